"""The kustomize base and every component render, pass strict schema validation for the
stated Kubernetes version, and hang together (selectors, ports, references, probes, limits,
one external endpoint); deliberately broken copies are rejected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from k8s_support import COMPONENTS, DEPLOY_VARIANTS, KUBERNETES_VERSION, REPO_ROOT

VARIANTS = sorted(DEPLOY_VARIANTS)


def kinds(docs: list[dict]) -> list[tuple[str, str]]:
    return sorted((doc["kind"], doc["metadata"]["name"]) for doc in docs)


def find(docs: list[dict], kind: str, name: str) -> dict:
    """The object of that kind and name (a generated name may carry kustomize's hash suffix)."""
    pattern = re.compile(re.escape(name) + r"(-[a-z0-9]{10})?")
    matches = [d for d in docs if d["kind"] == kind and pattern.fullmatch(d["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_passes_strict_schema_validation(variant, render, validate_schemas):
    assert validate_schemas(render(DEPLOY_VARIANTS[variant])) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_resources_hang_together(variant, render, cross_check):
    assert cross_check(render(DEPLOY_VARIANTS[variant])) == []


def test_validated_kubernetes_version_is_known_offline():
    from kubernetes_validate import utils

    assert KUBERNETES_VERSION in utils.all_versions()


def test_base_holds_the_whole_stack(render):
    docs = render(())
    assert {(k, n.split("-")[0]) for k, n in kinds(docs)} >= {
        ("Namespace", "imagescan"),
        ("ConfigMap", "imagescan"),
        ("Secret", "imagescan"),
        ("StatefulSet", "redis"),
        ("StatefulSet", "rabbitmq"),
        ("Deployment", "rest"),
        ("Deployment", "worker"),
        ("Deployment", "logs"),
        ("Service", "rest"),
    }
    assert all(d["metadata"].get("namespace", "imagescan") == "imagescan" for d in docs)
    assert find(docs, "Service", "rest-public")["spec"]["type"] == "LoadBalancer"
    assert find(docs, "Service", "rest")["spec"]["type"] == "ClusterIP"
    # Only the rest pods ever reach Redis/RabbitMQ from anything but the stack.
    assert {d["kind"] for d in docs} >= {"PodDisruptionBudget", "NetworkPolicy"}


def test_statefulsets_persist_their_data(render):
    docs = render(())
    redis = find(docs, "StatefulSet", "redis")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    for name, mount in (("redis", "/data"), ("rabbitmq", "/var/lib/rabbitmq")):
        statefulset = find(docs, "StatefulSet", name)
        claim = statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        mounts = statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": claim, "mountPath": mount} in mounts


def test_rabbitmq_credentials_come_from_the_secret(render):
    container = find(render(()), "StatefulSet", "rabbitmq")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("valueFrom", {}) for e in container["env"]}
    for name in ("RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"):
        assert env[name]["secretKeyRef"]["name"].startswith("imagescan-secrets")


def test_probes_use_the_service_health_endpoints(render):
    docs = render(())
    rest = find(docs, "Deployment", "rest")["spec"]["template"]["spec"]["containers"][0]
    # /readyz fails only without Redis (uploads answer their own 503 JSON while RabbitMQ is
    # away), and bounds its broker check to 2 s: within the probe's timeout.
    assert rest["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert rest["readinessProbe"]["timeoutSeconds"] >= 3
    assert rest["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "http", "containerPort": 5000} in rest["ports"]
    worker = find(docs, "Deployment", "worker")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe"):
        assert worker[probe]["exec"]["command"] == ["python", "-m", "worker", "--check"]
    # Liveness never waits on the broker: the supervisor's metrics port answers.
    assert worker["livenessProbe"]["tcpSocket"]["port"] == "metrics"


def test_settings_are_variables_the_code_reads(render):
    """A misspelt setting would be silently ignored: every key must be named in the code."""
    sources = [p for d in ("imagescan", "rest", "worker", "logs") for p in (REPO_ROOT / d).rglob("*.py")]
    if not (REPO_ROOT / "imagescan" / "config.py").exists():
        pytest.skip("imagescan/config.py not present")
    known = {name for path in sources for name in re.findall(r'"([A-Z][A-Z0-9_]+)"', path.read_text())}
    settings = find(render(()), "ConfigMap", "imagescan-config")["data"]
    assert set(settings) <= known, f"unknown settings: {set(settings) - known}"


def test_keda_scales_the_worker_on_the_work_queue(render):
    scaled = find(render(("worker-keda",)), "ScaledObject", "worker")
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "rabbitmq"
    topology = REPO_ROOT / "imagescan" / "topology.py"
    queue = "imagescan.analyze"
    if topology.exists():
        queue = re.search(r'WORK_QUEUE\s*=\s*"([^"]+)"', topology.read_text()).group(1)
    assert trigger["metadata"]["queueName"] == queue


def test_ingress_component_swaps_the_load_balancer(render):
    docs = render(("ingress",))
    assert ("Service", "rest-public") not in kinds(docs)
    assert find(docs, "Ingress", "rest")["spec"]["defaultBackend"]["service"]["name"] == "rest"


def test_keda_operator_may_reach_rabbitmq_only_with_keda(render):
    def policies(docs):
        return {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}

    assert "rabbitmq-from-keda" in policies(render(("worker-keda",)))
    assert "rabbitmq-from-keda" not in policies(render(()))


def test_both_worker_autoscalers_together_are_caught(render, cross_check):
    problems = cross_check(render(("worker-hpa", "worker-keda")))
    assert any("worker has 2 autoscalers" in p for p in problems)


def test_every_component_is_tested():
    present = {p.name for p in (REPO_ROOT / "k8s" / "components").iterdir() if p.is_dir()}
    assert present == set(COMPONENTS)


# ---- deliberately broken copies must be rejected -------------------------------------------


def break_file(k8s_dir: Path, relative: str, old: str, new: str) -> None:
    path = k8s_dir / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


def test_schema_validation_rejects_a_misspelt_field(k8s_copy, render, validate_schemas):
    break_file(k8s_copy, "base/rest.yaml", "  revisionHistoryLimit: 5", "  revisionHistoryLimt: 5")
    problems = validate_schemas(render((), k8s_dir=k8s_copy))
    assert any("revisionHistoryLimt" in p and "deployment/rest" in p for p in problems)


def test_schema_validation_rejects_a_wrong_type(k8s_copy, render, validate_schemas):
    break_file(k8s_copy, "base/worker.yaml", "  replicas: 2", "  replicas: two")
    assert any("deployment/worker" in p for p in validate_schemas(render((), k8s_dir=k8s_copy)))


def test_strict_check_of_keda_resources_rejects_unknown_fields(k8s_copy, render, validate_schemas):
    break_file(k8s_copy, "components/worker-keda/scaledobject.yaml", "  pollingInterval:", "  pollInterval:")
    problems = validate_schemas(render(("worker-keda",), k8s_dir=k8s_copy))
    assert any("pollInterval" in p for p in problems)


BROKEN_COPIES = {
    "service targetPort": (
        "base/rest.yaml",
        "      targetPort: http",
        "      targetPort: web",
        "targetPort 'web'",
    ),
    "service selector": (
        "base/redis.yaml",
        "    app.kubernetes.io/name: redis\n  ports:",
        "    app: redis\n  ports:",
        "Service/redis: selector matches no pod template",
    ),
    "redis host": (
        "base/settings.env",
        "REDIS_HOST=redis",
        "REDIS_HOST=redis-master",
        "REDIS_HOST='redis-master'",
    ),
    "missing probe": (
        "base/logs.yaml",
        "          livenessProbe:",
        "          livenessProbeDisabled:",
        "no livenessProbe",
    ),
    "missing limits": ("base/rest.yaml", "            limits:\n", "            limitz:\n", "no cpu limits"),
    "second load balancer": (
        "base/rest.yaml",
        "  type: ClusterIP",
        "  type: LoadBalancer",
        "exactly one external",
    ),
    "secret key": ("base/worker.yaml", "key: REDIS_PASSWORD", "key: REDIS_PASSWD", "no key 'REDIS_PASSWD'"),
    "hpa target": (
        "components/rest-hpa/hpa.yaml",
        "    name: rest",
        "    name: rest-api",
        "'rest-api' does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_COPIES))
def test_cross_check_rejects_a_broken_copy(case, k8s_copy, render, cross_check):
    relative, old, new, expected = BROKEN_COPIES[case]
    break_file(k8s_copy, relative, old, new)
    components = ("rest-hpa",) if relative.startswith("components/rest-hpa") else ()
    problems = cross_check(render(components, k8s_dir=k8s_copy))
    assert any(expected in p for p in problems), problems


def test_deployment_files_name_no_path_of_this_checkout():
    """Manifests and scripts must work from any checkout: no absolute path of this one."""
    machine_paths = (str(REPO_ROOT), str(REPO_ROOT.parent / "shared"))
    files = [p for p in (REPO_ROOT / "k8s").rglob("*") if p.is_file()]
    files += [REPO_ROOT / name for name in ("rest-launch.sh", "scripts/deploy-k8s.sh", "docker-compose.yml")]
    for path in files:
        text = path.read_text(errors="replace")
        assert not any(machine_path in text for machine_path in machine_paths), path


def test_placeholder_secrets_are_marked(render):
    import base64

    secret = find(render(()), "Secret", "imagescan-secrets")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert {"API_KEY", "REDIS_PASSWORD", "RABBITMQ_USER", "RABBITMQ_PASSWORD", "RABBITMQ_AMQP_URI"} <= set(
        values
    )
    for key in ("API_KEY", "REDIS_PASSWORD", "RABBITMQ_PASSWORD"):
        assert values[key].startswith("CHANGE-ME"), key
    assert "secrets.env" in (REPO_ROOT / "k8s" / ".gitignore").read_text().split()
