"""Helpers for the offline checks of the deployment files (k8s/, Dockerfile, scripts).

Nothing here needs a cluster, a Docker engine or the network: manifests are rendered with
`kubectl kustomize` (client side only) and validated against the JSON schemas that ship with
kubernetes-validate.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The Kubernetes release the manifests are validated against (kubernetes-validate schemas).
KUBERNETES_VERSION = "1.32.0"

# Every component of k8s/components, and the combinations scripts/deploy-k8s.sh builds.
COMPONENTS = ("ingress", "monitoring", "rabbitmq-cluster", "redis-sentinel", "rest-hpa", "worker-hpa",
              "worker-keda", "face-tier")
# The committed overlays (k8s/overlays/NAME), each with the components the deploy script adds.
OVERLAYS = ("development", "production")
DEPLOY_VARIANTS = {
    "base": (),
    **{name: (name,) for name in COMPONENTS},
    "ha": ("rabbitmq-cluster", "redis-sentinel"),
    "ingress+autoscale-cpu": ("ingress", "rest-hpa", "worker-hpa"),
    "ingress+autoscale-keda": ("ingress", "rest-hpa", "worker-keda"),
    "ingress+autoscale-keda+monitoring": ("ingress", "rest-hpa", "worker-keda", "monitoring"),
}


def find_tool(name: str) -> str | None:
    """A tool from PATH, or from the virtualenv running the tests (PyPI-installed tools)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else None


def write_overlay(k8s_dir: Path, components: tuple[str, ...], namespace: str | None = None,
                  over: str = "base") -> Path:
    """A kustomization over k8s_dir/OVER (base, or overlays/NAME) with the given components."""
    overlay = k8s_dir / "test-overlay"
    overlay.mkdir(exist_ok=True)
    doc: dict = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"../{over}"],
    }
    if components:
        doc["components"] = [f"../components/{name}" for name in components]
    if namespace:
        doc["namespace"] = namespace
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    return overlay


def kustomize(kubectl: str, directory: Path) -> str:
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return result.stdout


def run_tool(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **kwargs)


# ---- schema validation ---------------------------------------------------------------------

# Custom resources have no schema in kubernetes-validate: they are checked by keda_problems()
# and monitoring_problems().
CUSTOM_API_GROUPS = ("keda.sh/", "monitoring.coreos.com/")


def is_custom_resource(doc: dict) -> bool:
    return doc["apiVersion"].startswith(CUSTOM_API_GROUPS)


def schema_problems(docs: list[dict]) -> list[str]:
    """kubernetes-validate --strict on every built-in resource; each must really be checked."""
    builtin = [doc for doc in docs if not is_custom_resource(doc)]
    validator = find_tool("kubernetes-validate")
    assert validator, "kubernetes-validate is not installed"
    result = run_tool(
        [validator, "--strict", "-k", KUBERNETES_VERSION, "-"],
        input=yaml.safe_dump_all(builtin),
    )
    problems = [line for line in result.stdout.splitlines() if not line.startswith("INFO")]
    passed = sum(" passed for resource " in line for line in result.stdout.splitlines())
    if result.returncode != 0 or passed != len(builtin):
        problems.append(f"{passed} of {len(builtin)} resources passed (exit {result.returncode})")
    custom = [doc for doc in docs if is_custom_resource(doc)]
    monitoring = [doc for doc in custom if doc["apiVersion"].startswith("monitoring.coreos.com/")]
    return (problems + keda_problems([doc for doc in custom if doc not in monitoring])
            + monitoring_problems(monitoring))


KEDA_SPEC_KEYS = {
    "ScaledObject": {
        "scaleTargetRef",
        "minReplicaCount",
        "maxReplicaCount",
        "pollingInterval",
        "cooldownPeriod",
        "idleReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    },
    "TriggerAuthentication": {"secretTargetRef", "env", "hashiCorpVault", "podIdentity"},
}


def keda_problems(docs: list[dict]) -> list[str]:
    """A hand-written strict check of the KEDA resources (keda.sh/v1alpha1) we use."""
    problems = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] != "keda.sh/v1alpha1" or doc["kind"] not in KEDA_SPEC_KEYS:
            problems.append(f"{where}: unexpected custom resource {doc['apiVersion']}")
            continue
        spec = doc.get("spec", {})
        unknown = set(spec) - KEDA_SPEC_KEYS[doc["kind"]]
        if unknown:
            problems.append(f"{where}: unknown spec fields {sorted(unknown)}")
        if doc["kind"] == "ScaledObject":
            if not spec.get("scaleTargetRef", {}).get("name"):
                problems.append(f"{where}: scaleTargetRef.name missing")
            if not 0 < spec.get("minReplicaCount", 1) <= spec.get("maxReplicaCount", 100):
                problems.append(f"{where}: replica bounds are inconsistent")
            for trigger in spec.get("triggers", []):
                if trigger.get("type") == "rabbitmq":
                    meta = trigger.get("metadata", {})
                    for key in ("queueName", "mode", "value"):
                        if key not in meta:
                            problems.append(f"{where}: rabbitmq trigger needs metadata.{key}")
                    if "host" in meta:
                        problems.append(f"{where}: the AMQP URI holds a password: use authenticationRef")
            if not spec.get("triggers"):
                problems.append(f"{where}: no triggers")
        else:
            for ref in spec.get("secretTargetRef", []):
                if set(ref) != {"parameter", "name", "key"}:
                    problems.append(f"{where}: secretTargetRef entries need parameter, name, key")
    return problems


# Prometheus Operator resources (monitoring.coreos.com/v1): the fields we may use, checked strictly.
_ENDPOINT_KEYS = {"port", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels",
                  "honorTimestamps", "relabelings", "metricRelabelings", "tlsConfig", "authorization",
                  "basicAuth", "bearerTokenSecret", "followRedirects", "enableHttp2", "proxyUrl"}
MONITORING_SPEC_KEYS = {
    "ServiceMonitor": {"jobLabel", "targetLabels", "podTargetLabels", "endpoints", "selector",
                       "namespaceSelector", "sampleLimit", "targetLimit", "labelLimit"},
    "PodMonitor": {"jobLabel", "podTargetLabels", "podMetricsEndpoints", "selector", "namespaceSelector",
                   "sampleLimit", "targetLimit", "labelLimit"},
    "PrometheusRule": {"groups"},
}
_GROUP_KEYS = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset", "labels"}
_RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def monitoring_problems(docs: list[dict]) -> list[str]:
    """A hand-written strict check of the Prometheus Operator resources we use."""
    problems = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] != "monitoring.coreos.com/v1" or doc["kind"] not in MONITORING_SPEC_KEYS:
            problems.append(f"{where}: unexpected custom resource {doc['apiVersion']}")
            continue
        spec = doc.get("spec", {})
        unknown = set(spec) - MONITORING_SPEC_KEYS[doc["kind"]]
        if unknown:
            problems.append(f"{where}: unknown spec fields {sorted(unknown)}")
        if doc["kind"] == "PrometheusRule":
            problems += _rule_group_problems(where, spec.get("groups") or [])
            continue
        endpoints = spec.get("endpoints" if doc["kind"] == "ServiceMonitor" else "podMetricsEndpoints") or []
        if not endpoints or not spec.get("selector"):
            problems.append(f"{where}: needs a selector and at least one endpoint")
        for endpoint in endpoints:
            if set(endpoint) - _ENDPOINT_KEYS:
                problems.append(f"{where}: unknown endpoint fields {sorted(set(endpoint) - _ENDPOINT_KEYS)}")
            if not isinstance(endpoint.get("port"), str):
                problems.append(f"{where}: endpoints name their port")
    return problems


def _rule_group_problems(where: str, groups: list[dict]) -> list[str]:
    problems = [] if groups else [f"{where}: no rule groups"]
    for group in groups:
        if set(group) - _GROUP_KEYS or not group.get("rules"):
            problems.append(f"{where}: group {group.get('name')!r} has unknown fields or no rules")
        for rule in group.get("rules", []):
            if set(rule) - _RULE_KEYS or ("alert" in rule) == ("record" in rule) or not rule.get("expr"):
                problems.append(f"{where}: rule {rule.get('alert') or rule.get('record')!r} is malformed")
    return problems


# ---- cross-checks between resources --------------------------------------------------------

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def index(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def selects(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels/matchExpressions, or a Service's plain map) matches."""
    if "matchLabels" in selector or "matchExpressions" in selector:
        plain = selector.get("matchLabels", {})
        for expression in selector.get("matchExpressions", []):
            value = labels.get(expression["key"])
            operator = expression["operator"]
            if operator == "In" and value not in expression["values"]:
                return False
            if operator == "NotIn" and value in expression["values"]:
                return False
            if operator == "Exists" and expression["key"] not in labels:
                return False
            if operator == "DoesNotExist" and expression["key"] in labels:
                return False
    else:
        plain = selector
    return all(labels.get(key) == value for key, value in plain.items())


def pod_templates(docs: list[dict]) -> list[tuple[str, dict]]:
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"])
        for doc in docs
        if doc["kind"] in WORKLOAD_KINDS
    ]


def service_problems(docs: list[dict]) -> list[str]:
    problems = []
    for svc in (doc for doc in docs if doc["kind"] == "Service"):
        name = svc["metadata"]["name"]
        selected = [
            (where, tpl)
            for where, tpl in pod_templates(docs)
            if selects(svc["spec"].get("selector", {}), tpl["metadata"].get("labels", {}))
        ]
        if not svc["spec"].get("selector") or not selected:
            problems.append(f"Service/{name}: selector matches no pod template")
        for where, template in selected:
            ports = [p for c in template["spec"]["containers"] for p in c.get("ports", [])]
            for port in svc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                if not any(target in (p.get("name"), p["containerPort"]) for p in ports):
                    problems.append(f"Service/{name}: targetPort {target!r} is no port of {where}")
    return problems


def reference_problems(docs: list[dict]) -> list[str]:
    """Every ConfigMap/Secret reference (and key) of a pod exists; so do scaling targets."""
    problems = []
    objects = index(docs)

    def check(kind: str, name: str, key: str | None, where: str) -> None:
        target = objects.get((kind, name))
        if target is None:
            problems.append(f"{where}: {kind} {name!r} does not exist")
        elif key is not None and key not in target.get("data", {}):
            problems.append(f"{where}: {kind} {name!r} has no key {key!r}")

    for where, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    check("ConfigMap", source["configMapRef"]["name"], None, where)
                if "secretRef" in source:
                    check("Secret", source["secretRef"]["name"], None, where)
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    check("ConfigMap", ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"], where)
                if "secretKeyRef" in ref:
                    check("Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"], where)
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = doc["spec"]["scaleTargetRef"]
            if (target.get("kind", "Deployment"), target["name"]) not in objects:
                problems.append(f"{where}: scale target {target['name']!r} does not exist")
        if doc["kind"] == "TriggerAuthentication":
            for ref in doc["spec"].get("secretTargetRef", []):
                check("Secret", ref["name"], ref["key"], where)
        if doc["kind"] == "ScaledObject":
            for trigger in doc["spec"]["triggers"]:
                auth = trigger.get("authenticationRef", {}).get("name")
                if auth and ("TriggerAuthentication", auth) not in objects:
                    problems.append(f"{where}: TriggerAuthentication {auth!r} does not exist")
        if doc["kind"] in ("PodDisruptionBudget", "NetworkPolicy"):
            selector = doc["spec"]["selector" if doc["kind"] == "PodDisruptionBudget" else "podSelector"]
            if selector and not any(
                selects(selector, t["metadata"]["labels"]) for _, t in pod_templates(docs)
            ):
                problems.append(f"{where}: selector matches no pod template")
        if doc["kind"] == "Ingress":
            backend = doc["spec"]["defaultBackend"]["service"]
            if ("Service", backend["name"]) not in objects:
                problems.append(f"{where}: backend Service {backend['name']!r} does not exist")
    return problems


def container_problems(docs: list[dict]) -> list[str]:
    problems = []
    for where, template in pod_templates(docs):
        spec = template["spec"]
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{where}: pod does not set runAsNonRoot")
        for container in spec["containers"]:
            name = f"{where} container {container['name']}"
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{name}: no {probe}")
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(bound, {}):
                        problems.append(f"{name}: no {resource} {bound}")
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation is not false")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{name}: capabilities are not all dropped")
            image = container["image"]
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"{name}: image {image!r} has no pinned tag")
            if security.get("readOnlyRootFilesystem"):
                mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
                if "/tmp" not in mounts:
                    problems.append(f"{name}: read-only root filesystem without a /tmp volume")
    return problems


def exposure_problems(docs: list[dict]) -> list[str]:
    """Exactly one way in from outside, and it leads to the rest pods."""
    external = [
        doc
        for doc in docs
        if doc["kind"] == "Ingress"
        or (doc["kind"] == "Service" and doc["spec"].get("type") in ("LoadBalancer", "NodePort"))
    ]
    problems = []
    if len(external) != 1:
        names = [f"{d['kind']}/{d['metadata']['name']}" for d in external]
        problems.append(f"expected exactly one external Service/Ingress, found {names}")
    objects = index(docs)
    for doc in external:
        service = doc
        if doc["kind"] == "Ingress":
            service = objects.get(("Service", doc["spec"]["defaultBackend"]["service"]["name"]), {})
        if service.get("spec", {}).get("selector", {}).get("app.kubernetes.io/name") != "rest":
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} does not lead to the rest pods")
    return problems


def scaler_problems(docs: list[dict]) -> list[str]:
    """At most one autoscaler per workload (KEDA's ScaledObject creates an HPA of its own)."""
    targets = [
        doc["spec"]["scaleTargetRef"]["name"]
        for doc in docs
        if doc["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    ]
    problems = [
        f"{name} has {targets.count(name)} autoscalers" for name in set(targets) if targets.count(name) > 1
    ]
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] in targets and "replicas" in doc["spec"]:
            problems.append(f"Deployment/{doc['metadata']['name']} is autoscaled but still sets replicas")
    return problems


def settings_problems(docs: list[dict]) -> list[str]:
    """REDIS_HOST/RABBITMQ_HOST name the Services of the Redis/RabbitMQ pods, on their ports."""
    problems = []
    objects = index(docs)
    configs = [doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("imagescan-config")]
    if len(configs) != 1:
        return [f"expected one ConfigMap of settings, found {len(configs)}"]
    settings = configs[0]["data"]
    for prefix, workload in (("REDIS", "redis"), ("RABBITMQ", "rabbitmq")):
        host, port = settings.get(f"{prefix}_HOST"), settings.get(f"{prefix}_PORT")
        service = objects.get(("Service", host))
        statefulset = objects.get(("StatefulSet", workload))
        if service is None or statefulset is None:
            problems.append(f"{prefix}_HOST={host!r}: no such Service (or no {workload} StatefulSet)")
            continue
        if not selects(service["spec"]["selector"], statefulset["spec"]["template"]["metadata"]["labels"]):
            problems.append(f"Service {host!r} does not select the {workload} pods")
        if str(port) not in {str(p["port"]) for p in service["spec"]["ports"]}:
            problems.append(f"{prefix}_PORT={port} is not a port of Service {host!r}")
    return problems


def monitor_target_problems(docs: list[dict]) -> list[str]:
    """Monitors select something and name a port it has; prometheus.io/port is a container port."""
    problems = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "ServiceMonitor":
            services = [d for d in docs if d["kind"] == "Service" and selects(doc["spec"]["selector"], d["metadata"].get("labels", {}))]
            ports = {port.get("name") for svc in services for port in svc["spec"]["ports"]}
            wanted = [endpoint["port"] for endpoint in doc["spec"]["endpoints"]]
        elif doc["kind"] == "PodMonitor":
            services = [t for _, t in pod_templates(docs) if selects(doc["spec"]["selector"], t["metadata"]["labels"])]
            ports = {p.get("name") for t in services for c in t["spec"]["containers"] for p in c.get("ports", [])}
            wanted = [endpoint["port"] for endpoint in doc["spec"]["podMetricsEndpoints"]]
            missing = [t["metadata"]["labels"].get("app.kubernetes.io/name") for t in services
                       if not any(p.get("name") in wanted for c in t["spec"]["containers"] for p in c.get("ports", []))]
            if missing:
                problems.append(f"{where}: pods {missing} have no port {wanted}")
        else:
            continue
        if not services:
            problems.append(f"{where}: selector matches nothing")
        problems += [f"{where}: no port named {port!r}" for port in wanted if port not in ports]
    for where, template in pod_templates(docs):
        annotated = template["metadata"].get("annotations", {}).get("prometheus.io/port")
        ports = {str(p["containerPort"]) for c in template["spec"]["containers"] for p in c.get("ports", [])}
        if annotated is not None and annotated not in ports:
            problems.append(f"{where}: prometheus.io/port {annotated} is no container port")
    return problems


def stack_problems(docs: list[dict]) -> list[str]:
    return (
        service_problems(docs)
        + reference_problems(docs)
        + container_problems(docs)
        + exposure_problems(docs)
        + scaler_problems(docs)
        + settings_problems(docs)
        + monitor_target_problems(docs)
    )
