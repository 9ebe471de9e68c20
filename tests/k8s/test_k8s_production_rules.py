"""The production rules (k8s_rules.py) hold for every way the stack is deployed, and each
rule rejects a deliberately broken copy."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from k8s_rules import production_problems, rabbitmq_cluster_problems
from k8s_support import DEPLOY_VARIANTS, OVERLAYS
from test_k8s_manifests import break_file, find

VARIANTS = sorted(DEPLOY_VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_meets_the_production_rules(variant, render):
    assert production_problems(render(DEPLOY_VARIANTS[variant])) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_validates_and_meets_the_rules(overlay, render, validate_schemas, cross_check):
    docs = render((), over=f"overlays/{overlay}")
    assert validate_schemas(docs) == [] and cross_check(docs) == []
    assert production_problems(docs) == []
    with_ingress = render(("ingress", "rest-hpa", "worker-keda"), over=f"overlays/{overlay}")
    assert validate_schemas(with_ingress) == [] and production_problems(with_ingress) == []


def test_production_overlay_runs_the_clusters(render):
    docs = render((), over="overlays/production")
    assert rabbitmq_cluster_problems(docs) == []
    assert find(docs, "StatefulSet", "redis")["spec"]["replicas"] == 3
    assert find(docs, "StatefulSet", "redis-sentinel")["spec"]["replicas"] == 3
    settings = find(docs, "ConfigMap", "imagescan-config")["data"]
    assert len(settings["REDIS_SENTINELS"].split(",")) == 3 and settings["REDIS_SENTINEL_MASTER"]
    for name in ("redis", "rabbitmq"):
        claim = find(docs, "StatefulSet", name)["spec"]["volumeClaimTemplates"][0]
        assert claim["spec"]["storageClassName"], f"{name}: no storage class named"


def test_development_overlay_keeps_the_single_node_path(render):
    """One RabbitMQ and one Redis (what the podman end-to-end run starts), no cluster parts."""
    docs = render((), over="overlays/development")
    assert rabbitmq_cluster_problems(docs) != []
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "redis-sentinel") not in kinds and ("Role", "rabbitmq-peer-discovery") not in kinds
    assert all(d["spec"].get("replicas", 1) == 1 for d in docs if d["kind"] in ("StatefulSet", "Deployment"))


def test_every_workload_carries_the_standard_labels(render):
    for doc in render((), over="overlays/production"):
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "imagescan", doc["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize"
        if doc["kind"] in ("Deployment", "StatefulSet"):
            assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= set(labels)


BROKEN = {
    "liveness on the broker": (
        "base/worker.yaml",
        "            tcpSocket:\n              port: metrics\n            periodSeconds: 30",
        "            exec:\n              command: [\"python\", \"-m\", \"worker\", \"--check\"]\n            periodSeconds: 30",
        "liveness names a dependency",
    ),
    "liveness on readiness": (
        "base/rest.yaml",
        "          livenessProbe:\n            httpGet:\n              path: /healthz",
        "          livenessProbe:\n            httpGet:\n              path: /readyz",
        "liveness names a dependency",
    ),
    "no startup probe": ("base/worker.yaml", "          startupProbe:", "          startupProbeOff:", "no startupProbe"),
    "redis ping only": (
        "base/redis.yaml",
        "                  redis-cli info persistence | grep -q '^loading:0'\n            periodSeconds: 10\n            timeoutSeconds: 5\n          # Loading",
        "                  true\n            periodSeconds: 10\n            timeoutSeconds: 5\n          # Loading",
        "readiness passes while loading",
    ),
    "redis without maxmemory": ("base/redis.yaml", "            - --maxmemory-policy\n            - noeviction\n", "", "no maxmemory"),
    "redis snapshots": ("base/redis.yaml", "            - --save\n            - \"\"\n", "", "RDB snapshots"),
    "budget of two": ("base/disruption-budgets.yaml", "  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: rest",
                      "  maxUnavailable: 2\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: rest", "exactly one disruption"),
    "no zone spread": ("base/worker.yaml", "topology.kubernetes.io/zone", "example.com/rack", "not spread"),
    "no preStop": ("base/rest.yaml", "command: [\"sleep\", \"15\"]", "command: [\"sleep\", \"0\"]", "no preStop delay"),
    "grace too short": ("base/rest.yaml", "terminationGracePeriodSeconds: 150", "terminationGracePeriodSeconds: 30", ">= grace period"),
    "no default deny": ("base/network-policies.yaml", "  name: default-deny-egress\nspec:\n  podSelector: {}",
                        "  name: default-deny-egress\nspec:\n  podSelector:\n    matchLabels:\n      x: y", "no default-deny egress"),
    "object store unreachable": ("base/network-policies.yaml", "  name: egress-worker-to-object-store\nspec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: worker",
                                 "  name: egress-worker-to-object-store\nspec:\n  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: nobody", "cannot reach the object store"),
    "metadata reachable": ("base/network-policies.yaml", "              - 169.254.0.0/16\n", "", "without excluding"),
    "pod security": ("base/namespace.yaml", "enforce: restricted", "enforce: baseline", "restricted Pod Security"),
    "shared account": ("base/logs.yaml", "serviceAccountName: logs", "serviceAccountName: worker", "shares ServiceAccount"),
    "token without role": ("base/service-accounts.yaml", "  name: worker\n  labels:\n    app.kubernetes.io/name: worker\nautomountServiceAccountToken: false",
                           "  name: worker\n  labels:\n    app.kubernetes.io/name: worker\nautomountServiceAccountToken: true", "API token"),
    "privilege escalation": ("base/rabbitmq.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "privilege escalation"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_rule_rejects_a_broken_copy(case, k8s_copy, render):
    relative, old, new, expected = BROKEN[case]
    if case == "token without role":  # the pod inherits the account's setting
        break_file(k8s_copy, "base/worker.yaml", "      automountServiceAccountToken: false\n", "")
    break_file(k8s_copy, relative, old, new)
    problems = production_problems(render((), k8s_dir=k8s_copy))
    assert any(expected in p for p in problems), problems


INGRESS_BREAKS = {
    "no tls": ("  tls:\n    - hosts:\n        - imagescan.example.com\n      secretName: rest-tls\n", "", "no TLS section"),
    "no class": ("  ingressClassName: nginx\n", "", "no ingressClassName"),
    "no redirect": ("ssl-redirect: \"true\"", "ssl-redirect: \"false\"", "not redirected"),
}


@pytest.mark.parametrize("case", sorted(INGRESS_BREAKS))
def test_ingress_rules_reject_a_broken_copy(case, k8s_copy, render):
    old, new, expected = INGRESS_BREAKS[case]
    break_file(k8s_copy, "components/ingress/ingress.yaml", old, new)
    problems = production_problems(render(("ingress",), k8s_dir=k8s_copy))
    assert any(expected in p for p in problems), problems


def test_cluster_rule_rejects_a_cluster_without_peer_discovery(k8s_copy, render):
    break_file(k8s_copy, "components/rabbitmq-cluster/cluster.conf",
               "cluster_formation.peer_discovery_backend = rabbit_peer_discovery_k8s", "")
    problems = rabbitmq_cluster_problems(render(("rabbitmq-cluster",), k8s_dir=k8s_copy))
    assert any("rabbit_peer_discovery_k8s" in p for p in problems)


# ---- the Redis probe, run against a real redis-server ----------------------------------------


def redis_readiness_command(render) -> str:
    redis = find(render(()), "StatefulSet", "redis")
    return redis["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"][2]


@pytest.fixture
def password_redis(tmp_path):
    from tests.faults.servers import free_port, wait_until

    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.fail("redis-server/redis-cli missing: `make venv` installs the Debian packages")
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--requirepass", "right", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "-a", "right", "--no-auth-warning", "ping"],
                                      capture_output=True, text=True, check=False).stdout.strip() == "PONG",
               10, "redis")
    yield port
    process.terminate()
    process.wait(10)


def test_redis_readiness_fails_with_a_wrong_password_and_passes_with_the_right_one(render, password_redis, tmp_path):
    command = redis_readiness_command(render)
    # redis-cli of the probe talks to the default port: point it at the test server.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "redis-cli").write_text(f'#!/bin/sh\nexec {shutil.which("redis-cli")} -p {password_redis} "$@"\n')
    (shim / "redis-cli").chmod(0o755)
    import os

    def probe(password: str) -> int:
        env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}", "REDISCLI_AUTH": password}
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=20,
                              check=False).returncode

    assert probe("wrong") != 0, "a Redis that refuses the password is not ready"
    assert probe("right") == 0
