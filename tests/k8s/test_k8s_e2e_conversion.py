"""The conversion of the rendered stack for `podman kube play` (make e2e), checked offline:
podman gets only what it runs, and each container keeps the spec users deploy."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
from k8s_support import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts" / "e2e"))
import podman_manifests

PORTS = {"rest": 15000, "redis": 16379, "rabbitmq": 15672, "rabbitmq_dist": 15673, "epmd": 15674,
         "worker_metrics": 19100, "logs_metrics": 19101}
WORKLOADS = {"redis", "rabbitmq", "rest", "worker", "logs"}
# What the conversion may touch in a container: ports, env for ports, $(VAR) expansion.
KEPT = ("image", "command", "securityContext", "resources", "volumeMounts")
PROBES = ("readinessProbe", "livenessProbe", "startupProbe")


def without_port(probe: dict | None) -> dict | None:
    """A probe with its port left out (a named port becomes a number on the host network)."""
    if probe is None:
        return None
    probe = copy.deepcopy(probe)
    for action in ("httpGet", "tcpSocket"):
        probe.get(action, {}).pop("port", None)
    command = probe.get("exec", {}).get("command", [])
    if command[:2] == ["redis-cli", "-p"]:
        del command[1:3]
    elif command[:2] == ["sh", "-c"]:
        command[2] = re.sub(r"redis-cli -p \d+", "redis-cli", command[2])
    return probe


def secret_values(docs: list[dict]) -> dict[str, str]:
    keys = next(d for d in docs if d["kind"] == "Secret")["data"]
    return {key: f"value-of-{key.lower()}" for key in keys}


@pytest.fixture
def rendered(render) -> list[dict]:
    return copy.deepcopy(render())


@pytest.fixture
def converted(rendered) -> dict[str, list[dict]]:
    return podman_manifests.convert(copy.deepcopy(rendered), PORTS, secret_values(rendered), None)


def containers(workload_docs: list[dict]) -> list[dict]:
    return workload_docs[0]["spec"]["template"]["spec"]["containers"]


def rendered_workload(rendered: list[dict], name: str) -> dict:
    return next(d for d in rendered if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"] == name)


def test_podman_gets_one_deployment_per_workload_and_the_configmaps(converted):
    assert set(converted) == WORKLOADS | {"config", "files"}
    for name in WORKLOADS:
        (doc,) = converted[name]
        assert (doc["kind"], doc["spec"]["replicas"]) == ("Deployment", 1)
    assert {d["kind"] for d in converted["config"]} == {"ConfigMap"}


def test_container_specs_stay_as_rendered(rendered, converted):
    for name in WORKLOADS:
        before = rendered_workload(rendered, name)["spec"]["template"]["spec"]
        after = converted[name][0]["spec"]["template"]["spec"]
        assert after["securityContext"] == before["securityContext"]
        for old, new in zip(before["containers"], containers(converted[name]), strict=True):
            for field in KEPT:
                if field == "volumeMounts":
                    assert [m["mountPath"] for m in new.get(field, [])] == [m["mountPath"] for m in old.get(field, [])]
                else:
                    assert new.get(field) == old.get(field), f"{name}: {field} changed"
            assert {e["name"] for e in old.get("env", [])} <= {e["name"] for e in new.get("env", [])}
            assert new.get("envFrom") == old.get("envFrom")
            for probe in PROBES:
                assert without_port(new.get(probe)) == without_port(old.get(probe)), f"{name}: {probe} changed"
            assert "ports" not in new, "nothing is published on the host network"


def test_secrets_come_from_this_run_never_the_placeholders(rendered, converted):
    config = {d["metadata"]["name"]: d["data"] for d in converted["config"]}
    assert config[podman_manifests.SECRET_NAME] == secret_values(rendered)
    text = repr(converted)
    assert "secretKeyRef" not in text and "CHANGE-ME" not in text


def test_hosts_and_ports_point_at_loopback(converted):
    settings = next(d["data"] for d in converted["config"] if "REDIS_HOST" in d["data"])
    assert settings["REDIS_HOST"] == settings["RABBITMQ_HOST"] == "127.0.0.1"
    assert (settings["PORT"], settings["REDIS_PORT"], settings["RABBITMQ_PORT"]) == ("15000", "16379", "15672")
    rabbit_env = {e["name"]: e.get("value") for e in containers(converted["rabbitmq"])[0]["env"]}
    assert rabbit_env["RABBITMQ_NODE_PORT"] == "15672" and rabbit_env["ERL_EPMD_PORT"] == "15674"
    redis = containers(converted["redis"])[0]
    assert redis["args"][-2:] == ["--port", "16379"]
    readiness = " ".join(redis["readinessProbe"]["exec"]["command"])
    assert readiness.count("redis-cli") == readiness.count("redis-cli -p 16379") > 0
    rest = containers(converted["rest"])[0]
    assert rest["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 15000}


def test_args_references_are_expanded_like_the_kubelet_does(converted):
    args = containers(converted["redis"])[0]["args"]
    assert "value-of-redis_password" in args
    assert not any("$(" in arg for arg in args)


def test_every_volume_is_private_to_its_workload_and_claims_become_empty_dirs(converted):
    names = []
    for name in WORKLOADS:
        pod = converted[name][0]["spec"]["template"]["spec"]
        names += [v["name"] for v in pod.get("volumes", [])]
        for volume in pod.get("volumes", []):
            # Claims become emptyDirs; files from a ConfigMap (RabbitMQ's settings) stay as they are.
            assert ("emptyDir" in volume or "configMap" in volume or volume.get("hostPath", {}).get("type") == "File")
            assert volume["name"].startswith(f"imagescan-e2e-{name}-")
    assert len(names) == len(set(names))
    assert any(n.endswith("redis-data") for n in names) and any(n.endswith("rabbitmq-data") for n in names)


def s3_docs(rendered: list[dict], **settings: str) -> list[dict]:
    docs = copy.deepcopy(rendered)
    next(d for d in docs if d["kind"] == "ConfigMap" and "BLOB_STORE" in d["data"])["data"].update(
        BLOB_STORE="s3", **settings)
    return docs


def test_an_s3_endpoint_is_pointed_at_the_local_server(rendered):
    docs = s3_docs(rendered, S3_ENDPOINT_URL="https://s3.example.com/base")
    out = podman_manifests.convert(docs, PORTS, secret_values(rendered), "http://127.0.0.1:19000")
    settings = next(d["data"] for d in out["config"] if "REDIS_HOST" in d["data"])
    assert settings["S3_ENDPOINT_URL"] == "http://127.0.0.1:19000/base"
    bare = s3_docs(rendered)
    next(d for d in bare if d["kind"] == "ConfigMap" and "BLOB_STORE" in d["data"])["data"].pop("S3_ENDPOINT_URL")
    with pytest.raises(SystemExit, match="no S3 endpoint"):
        podman_manifests.convert(bare, PORTS, secret_values(rendered), "http://127.0.0.1:19000")


def test_a_configmap_key_mounted_as_a_file_becomes_a_host_file_of_it(converted, rendered):
    """podman 4.3 ignores subPath: RabbitMQ's enabled_plugins would become a directory."""
    pod = converted["rabbitmq"][0]["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    plugins = mounts["/etc/rabbitmq/enabled_plugins"]
    assert "subPath" not in plugins
    volume = next(v for v in pod["volumes"] if v["name"] == plugins["name"])
    written = converted["files"][Path(volume["hostPath"]["path"])]
    source = next(d for d in rendered if d["kind"] == "ConfigMap" and "enabled_plugins" in d["data"])
    assert written == source["data"]["enabled_plugins"]


def test_what_podman_cannot_run_is_refused_not_dropped(render):
    docs = copy.deepcopy(render(("rest-hpa",)))
    with pytest.raises(SystemExit, match="HorizontalPodAutoscaler"):
        podman_manifests.convert(docs, PORTS, secret_values(docs), None)


def test_a_secret_key_without_a_value_is_refused(rendered):
    values = secret_values(rendered)
    values.pop("API_KEY")
    with pytest.raises(SystemExit, match="API_KEY"):
        podman_manifests.convert(rendered, PORTS, values, None)
