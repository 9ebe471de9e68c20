#!/usr/bin/env python3
"""Turn the rendered k8s/ stack into what `podman kube play --network host` runs on one host.

    podman_manifests.py RENDERED.yaml OUTDIR --ports ports.json --secrets secrets.env [--s3-url URL]

Only what a single host cannot do is changed; every container spec (image, command, probes,
resources, security context) stays as rendered, except for:
- hosts and ports: Redis, RabbitMQ (and an S3 endpoint) are reached on 127.0.0.1, each
  service on a port of its own (the host network is shared with everything else);
- volumes: a StatefulSet's volumeClaimTemplates become emptyDir volumes of a Deployment
  (podman 4.3 runs no StatefulSet), and every volume is prefixed with its workload's name
  (podman makes an emptyDir a named volume: two pods' `data` would be one volume);
- replicas: one pod per workload (on one host network, a second rest pod would find its port
  taken);
- `$(VAR)` references in command and args are expanded from the container's env, as the
  kubelet does (podman 4.3 passes them on literally: Redis's --requirepass);
- Secrets: podman 4.3 cannot play a Secret, so the Secret's values (generated for this run)
  are supplied as a ConfigMap of the same name and the secretKeyRefs read that ConfigMap;
- ports: each service listens on a port of its own, and the containers' port lists go
  (nothing is published on the host network);
- Services, NetworkPolicies, PodDisruptionBudgets, ServiceAccounts, Roles and the Namespace
  are dropped (podman does not implement them; host networking replaces the Services);
- volumes of the Secret's keys read the ConfigMap standing in for it;
- init containers are dropped (podman 4.3 cannot bring up a pod with one; the only one,
  RabbitMQ's, copies the Erlang cookie a cluster shares, which a single node does not need);
- the broker's first user is the services' user (no deploy script creates users here);
- a ConfigMap key mounted as one file (`subPath`, which podman 4.3 ignores) becomes a host
  file of that content.

It writes one OUTDIR/configmap-<name>.yaml per ConfigMap (`kube play --configmap` reads one
ConfigMap per file) and one OUTDIR/<workload>.yaml per workload.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

PLAYABLE = ("Deployment", "ConfigMap")
# A single host has no API server: identities, policies and budgets have nothing to act on.
DROPPED = ("Namespace", "Service", "NetworkPolicy", "PodDisruptionBudget", "Secret", "StatefulSet",
           "ServiceAccount", "Role", "RoleBinding")
LOOPBACK = "127.0.0.1"
SECRET_NAME = "imagescan-secrets"


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def statefulset_as_deployment(doc: dict) -> dict:
    """The same pod template; each volume claim becomes an emptyDir of the same name."""
    spec = doc["spec"]
    template = spec["template"]
    claims = spec.get("volumeClaimTemplates", [])
    template["spec"].setdefault("volumes", []).extend(
        {"name": claim["metadata"]["name"], "emptyDir": {}} for claim in claims
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": doc["metadata"],
        "spec": {"replicas": spec.get("replicas", 1), "selector": spec["selector"], "template": template},
    }


def prefix_volumes(workload: str, pod_spec: dict) -> None:
    renamed = {v["name"]: f"imagescan-e2e-{workload}-{v['name']}" for v in pod_spec.get("volumes", [])}
    for volume in pod_spec.get("volumes", []):
        volume["name"] = renamed[volume["name"]]
    for container in all_containers(pod_spec):
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed[mount["name"]]


def all_containers(pod_spec: dict) -> list[dict]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def subpath_files_as_host_files(pod_spec: dict, configmaps: dict[str, dict], files_dir: Path,
                                files: dict[Path, str]) -> None:
    """One key of a ConfigMap mounted as one file (`subPath`) becomes a host file of that
    content: podman 4.3 ignores subPath (4.4 would mount the key) and would put the whole
    ConfigMap there as a directory."""
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    for container in all_containers(pod_spec):
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if not mount.get("subPath") or not volume or "configMap" not in volume:
                continue
            key = mount.pop("subPath")
            name = f"{mount['name']}-{re.sub(r'[^a-z0-9]+', '-', key.lower())}"
            path = files_dir / name
            files[path] = configmaps[volume["configMap"]["name"]][key]
            mount["name"] = name
            pod_spec["volumes"].append({"name": name, "hostPath": {"path": str(path), "type": "File"}})


def secret_volumes_from_configmap(pod_spec: dict) -> None:
    """A volume of the Secret's keys reads the ConfigMap that stands in for it."""
    for volume in pod_spec.get("volumes", []):
        if "secret" in volume:
            secret = volume.pop("secret")
            volume["configMap"] = {"name": secret["secretName"],
                                   **({"items": secret["items"]} if "items" in secret else {})}


def expand_references(container: dict, configmaps: dict[str, dict]) -> None:
    """$(NAME) in command/args -> the value of env NAME (literal or from a ConfigMap key)."""
    values = {}
    for env in container.get("env", []):
        if "value" in env:
            values[env["name"]] = env["value"]
        elif "configMapKeyRef" in env.get("valueFrom", {}):
            ref = env["valueFrom"]["configMapKeyRef"]
            values[env["name"]] = configmaps[ref["name"]][ref["key"]]
    for field in ("command", "args"):
        if field in container:
            container[field] = [re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), arg)
                                for arg in container[field]]


def point_url_at(url: str, server: str) -> str:
    """url with the scheme and host:port of server (the path, e.g. a bucket, is kept)."""
    parts, target = urlsplit(url), urlsplit(server)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


def settings_for_loopback(data: dict, ports: dict, s3_url: str | None) -> dict:
    """Hosts -> 127.0.0.1, each service on its own port; an S3 endpoint -> the local server."""
    data = dict(data)
    data.update(PORT=str(ports["rest"]), REDIS_HOST=LOOPBACK, REDIS_PORT=str(ports["redis"]),
                RABBITMQ_HOST=LOOPBACK, RABBITMQ_PORT=str(ports["rabbitmq"]))
    if s3_url:
        endpoint_keys = [k for k in data if k.startswith(("S3_", "AWS_")) and "ENDPOINT" in k]
        if not endpoint_keys:
            raise SystemExit("BLOB_STORE=s3 but the settings name no S3 endpoint (…ENDPOINT…)")
        for key in endpoint_keys:
            data[key] = point_url_at(data[key], s3_url) if data[key] else s3_url
    return data


def secrets_as_configmap(values: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": SECRET_NAME}, "data": values}


def read_secrets_from_configmap(container: dict) -> None:
    for env in container.get("env", []):
        ref = env.get("valueFrom", {})
        if "secretKeyRef" in ref:
            ref["configMapKeyRef"] = ref.pop("secretKeyRef")
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            source["configMapRef"] = source.pop("secretRef")


def set_env(container: dict, name: str, value: str) -> None:
    env = container.setdefault("env", [])
    env[:] = [e for e in env if e["name"] != name]
    env.append({"name": name, "value": value})


def set_container_port(container: dict, port: int) -> None:
    """On the host network a port is not published: podman 4.3 refuses any port list there
    ("PortMappings can only be used with Bridge or slirp4netns networking"). Probes that name
    the port get its number."""
    names = {entry.get("name") for entry in container.pop("ports", [])}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        action = container.get(probe, {}).get("httpGet") or container.get(probe, {}).get("tcpSocket")
        if action and (action.get("port") in names or isinstance(action.get("port"), int)):
            action["port"] = port


def move_redis(container: dict, ports: dict) -> None:
    container["args"] = [*container.get("args", []), "--port", str(ports["redis"])]
    set_container_port(container, ports["redis"])
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        command = container.get(probe, {}).get("exec", {}).get("command", [])
        if command[:1] == ["redis-cli"]:
            command[1:1] = ["-p", str(ports["redis"])]
        elif command[:2] == ["sh", "-c"]:  # a script: every redis-cli in it names the port
            command[2] = re.sub(r"\bredis-cli\b", f"redis-cli -p {ports['redis']}", command[2])


def move_rabbitmq(container: dict, ports: dict) -> None:
    # Its own node name, AMQP, distribution and epmd ports: nothing shared with another broker
    # on this host. The probes (rabbitmq-diagnostics) read the same variables.
    set_env(container, "RABBITMQ_NODENAME", f"imagescan{ports['rabbitmq']}@localhost")
    set_env(container, "RABBITMQ_NODE_PORT", str(ports["rabbitmq"]))
    set_env(container, "RABBITMQ_DIST_PORT", str(ports["rabbitmq_dist"]))
    set_env(container, "ERL_EPMD_PORT", str(ports["epmd"]))
    set_container_port(container, ports["rabbitmq"])


def move_metrics(container: dict, port: int) -> None:
    """The worker's and the logs service's metrics port (METRICS_PORT), one of its own each."""
    set_env(container, "METRICS_PORT", str(port))
    set_container_port(container, port)


MOVES = {"redis": move_redis, "rabbitmq": move_rabbitmq}


def convert(docs: list[dict], ports: dict, secrets: dict[str, str], s3_url: str | None,
            files_dir: Path = Path("files")) -> dict:
    unknown = sorted({d["kind"] for d in docs} - set(PLAYABLE) - set(DROPPED))
    if unknown:
        raise SystemExit(f"no podman equivalent for {unknown}")
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == SECRET_NAME)
    missing = set(secret.get("data", {})) - set(secrets)
    if missing:
        raise SystemExit(f"no value for secret keys {sorted(missing)}")
    configs = [secrets_as_configmap({k: secrets[k] for k in secret["data"]})]
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            if "REDIS_HOST" in doc["data"]:  # the services' settings (others are files, e.g. RabbitMQ's)
                doc["data"] = settings_for_loopback(doc["data"], ports, s3_url)
            configs.append(doc)
    by_name = {c["metadata"]["name"]: c["data"] for c in configs}
    workloads: dict[str, list[dict]] = {}
    files: dict[Path, str] = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            workload = statefulset_as_deployment(doc) if doc["kind"] == "StatefulSet" else doc
            name = workload["metadata"]["name"]
            workload["spec"]["replicas"] = 1
            pod_spec = workload["spec"]["template"]["spec"]
            # Podman 4.3 fails to bring up a pod with an init container ("failed to remove once
            # init container ... as it is running"). The only one, RabbitMQ's, copies the Erlang
            # cookie every node of a cluster shares; a single node shares it with nobody and
            # makes its own.
            pod_spec.pop("initContainers", None)
            prefix_volumes(name, pod_spec)
            secret_volumes_from_configmap(pod_spec)
            subpath_files_as_host_files(pod_spec, by_name, files_dir, files)
            for container in all_containers(pod_spec):
                read_secrets_from_configmap(container)
                expand_references(container, by_name)
            for container in pod_spec["containers"]:
                MOVES.get(name, lambda *_: None)(container, ports)
                if name == "rest":
                    set_container_port(container, ports["rest"])
                elif f"{name}_metrics" in ports:
                    move_metrics(container, ports[f"{name}_metrics"])
            workloads[name] = [workload]
    return {"config": configs, "files": files, **workloads}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rendered", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--ports", type=Path, required=True, help="JSON: rest, redis, rabbitmq, ...")
    parser.add_argument("--secrets", type=Path, required=True, help="env file of the Secret's values")
    parser.add_argument("--s3-url", help="endpoint of the local S3 server (BLOB_STORE=s3)")
    args = parser.parse_args(argv)
    docs = [d for d in yaml.safe_load_all(args.rendered.read_text()) if d]
    files = convert(docs, json.loads(args.ports.read_text()), read_env(args.secrets), args.s3_url)
    print(" ".join(write(files, args.outdir)))
    return 0


def write(files: dict[str, list[dict]], outdir: Path) -> list[str]:
    """The files kube play reads; returns the workload names."""
    outdir.mkdir(parents=True, exist_ok=True)
    for path, content in files.get("files", {}).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for configmap in files["config"]:
        (outdir / f"configmap-{configmap['metadata']['name']}.yaml").write_text(yaml.safe_dump(configmap))
    workloads = sorted(name for name in files if name not in ("config", "files"))
    for name in workloads:
        (outdir / f"{name}.yaml").write_text(yaml.safe_dump_all(files[name], sort_keys=False))
    return workloads


def rendered_setting(rendered: Path, key: str) -> str:
    """A value of the rendered settings ConfigMap (used by the e2e script: BLOB_STORE)."""
    for doc in yaml.safe_load_all(rendered.read_text()):
        if doc and doc["kind"] == "ConfigMap" and key in doc.get("data", {}):
            return doc["data"][key]
    return ""


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--setting":
        print(rendered_setting(Path(sys.argv[2]), sys.argv[3]))
        sys.exit(0)
    if re.fullmatch(r"-h|--help", sys.argv[1] if len(sys.argv) > 1 else "-h"):
        print(__doc__)
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
