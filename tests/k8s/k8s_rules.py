"""Production rules for the rendered manifests: each function returns the problems it finds.

They encode what the README's "What survives what" relies on: probes that say what they
mean, disruption budgets, spreading, grace periods, egress limits, TLS, Pod Security.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from k8s_support import index, pod_templates, selects

# What a liveness probe must never look at: another service (a broker or database outage
# would then restart every pod) or the readiness endpoint (which checks dependencies).
DEPENDENCY_MARKERS = ("RABBITMQ_HOST", "REDIS_HOST", "REDIS_SENTINELS", "-h ", "--check", "/readyz",
                      "create_connection", "amqp://", "redis://")
METADATA_RANGE = "169.254.0.0/16"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", METADATA_RANGE)
# Pods that fetch URLs given by API clients (rest: the faces API's image URLs).
URL_FETCHERS = ("rest",)
SPREAD_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
# Pods that read or write the blob store (originals, job outputs, thumbnails).
BLOB_STORE_USERS = ("rest", "worker")


def _containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _probe_text(probe: dict) -> str:
    if "exec" in probe:
        return " ".join(probe["exec"]["command"])
    if "httpGet" in probe:
        return probe["httpGet"].get("path", "/")
    return ""


def liveness_problems(docs: list[dict]) -> list[str]:
    problems = []
    for where, template in pod_templates(docs):
        for container in template["spec"]["containers"]:
            probe = container.get("livenessProbe")
            if probe is None:
                problems.append(f"{where}/{container['name']}: no livenessProbe")
                continue
            text = _probe_text(probe)
            named = [marker for marker in DEPENDENCY_MARKERS if marker in text]
            if named:
                problems.append(f"{where}/{container['name']}: liveness names a dependency ({named})")
            if "readinessProbe" not in container:
                problems.append(f"{where}/{container['name']}: no readinessProbe")
    return problems


def startup_problems(docs: list[dict]) -> list[str]:
    """Slow starters (models, a data set to load, a cluster to join) have a startup probe
    lasting minutes, so liveness never kills them while they start."""
    problems = []
    for where, template in pod_templates(docs):
        name = template["metadata"]["labels"].get("app.kubernetes.io/name")
        if name not in ("worker", "redis", "rabbitmq"):
            continue
        probe = template["spec"]["containers"][0].get("startupProbe")
        if probe is None:
            problems.append(f"{where}: no startupProbe")
        elif probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3) < 300:
            problems.append(f"{where}: the startupProbe allows less than 5 minutes")
    return problems


def redis_problems(docs: list[dict]) -> list[str]:
    problems = []
    for doc in docs:
        if doc["kind"] != "StatefulSet" or doc["metadata"]["name"] != "redis":
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        text = " ".join(container.get("args", []) + container.get("command", []))
        scripts = " ".join(str(d.get("data", {})) for d in docs if d["kind"] == "ConfigMap")
        settings = text + " " + scripts
        if "maxmemory" not in settings or "noeviction" not in settings:
            problems.append("redis: no maxmemory with the noeviction policy")
        args = container.get("args", [])
        rdb_off = ("--save" in args and args[args.index("--save") + 1] == "") or 'save ""' in scripts
        if not rdb_off:
            problems.append("redis: RDB snapshots are not turned off")
        readiness = _probe_text(container.get("readinessProbe", {}))
        if "PONG" not in readiness or "loading:0" not in readiness:
            problems.append("redis: readiness passes while loading or refusing the password")
        resources = container["resources"]
        if resources["requests"]["memory"] != resources["limits"]["memory"]:
            problems.append("redis: memory request below the limit (first to be evicted)")
    return problems


def disruption_problems(docs: list[dict]) -> list[str]:
    """Every workload has a budget that allows exactly one voluntary disruption at a time."""
    problems = []
    budgets = [doc for doc in docs if doc["kind"] == "PodDisruptionBudget"]
    for where, template in pod_templates(docs):
        labels = template["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") == "logs":
            continue  # one printer; losing it for a moment loses nothing (the logs are in the pods)
        matching = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        if len(matching) != 1:
            problems.append(f"{where}: {len(matching)} disruption budgets")
            continue
        spec = matching[0]["spec"]
        if spec.get("maxUnavailable") != 1:
            problems.append(f"{where}: the budget does not allow exactly one disruption ({spec})")
    return problems


def spread_problems(docs: list[dict]) -> list[str]:
    problems = []
    for where, template in pod_templates(docs):
        name = template["metadata"]["labels"].get("app.kubernetes.io/name")
        spec = template["spec"]
        keys = {c["topologyKey"] for c in spec.get("topologySpreadConstraints", [])}
        if name in ("rest", "worker") and not set(SPREAD_KEYS) <= keys:
            problems.append(f"{where}: not spread over nodes and zones ({sorted(keys)})")
        replicas = next(d for d in docs if f"{d['kind']}/{d['metadata']['name']}" == where)["spec"].get("replicas")
        anti = spec.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        if name in ("redis", "rabbitmq", "redis-sentinel") and (replicas or 1) > 1 and not anti:
            problems.append(f"{where}: members of a cluster may share a node")
    return problems


def grace_problems(docs: list[dict]) -> list[str]:
    """rest: preStop delay + gunicorn's graceful timeout fit in the grace period; worker: the
    longest analysis fits."""
    problems = []
    settings = next(d["data"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("imagescan-config"))
    for where, template in pod_templates(docs):
        name = template["metadata"]["labels"].get("app.kubernetes.io/name")
        grace = template["spec"].get("terminationGracePeriodSeconds", 30)
        if name == "rest":
            container = template["spec"]["containers"][0]
            pre_stop = container.get("lifecycle", {}).get("preStop", {})
            command = pre_stop.get("exec", {}).get("command", [])
            delay = int(command[1]) if command[:1] == ["sleep"] else pre_stop.get("sleep", {}).get("seconds", 0)
            graceful = int(settings.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
            if delay < 5:
                problems.append(f"{where}: no preStop delay (the load balancer still sends requests)")
            if graceful < 120:
                problems.append(f"{where}: GUNICORN_GRACEFUL_TIMEOUT {graceful}s cuts long uploads")
            if delay + graceful >= grace:
                problems.append(f"{where}: preStop {delay}s + graceful {graceful}s >= grace period {grace}s")
        if name == "worker" and grace < 120:
            problems.append(f"{where}: grace period {grace}s is shorter than the longest analysis")
    return problems


def _allows_everywhere(peer: dict, needed_exceptions: tuple[str, ...]) -> bool:
    block = peer.get("ipBlock")
    if block is None or block["cidr"] not in ("0.0.0.0/0", "::/0"):
        return False
    if block["cidr"] == "::/0":
        return not {"fc00::/7", "fe80::/10"} <= set(block.get("except", []))
    return not set(needed_exceptions) <= set(block.get("except", []))


def egress_problems(docs: list[dict]) -> list[str]:
    problems = []
    policies = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {} and "Egress" in p["spec"]["policyTypes"]
                    and not p["spec"].get("egress")]
    if not default_deny:
        problems.append("no default-deny egress policy")
    dns = [p for p in policies if p["spec"]["podSelector"] == {}
           and any(port.get("port") == 53 for rule in p["spec"].get("egress", []) for port in rule.get("ports", []))]
    if not dns:
        problems.append("no egress policy allows DNS")
    for where, template in pod_templates(docs):
        labels = template["metadata"]["labels"]
        rules = _egress_rules(policies, labels)
        fetcher = labels.get("app.kubernetes.io/name") in URL_FETCHERS
        needed = PRIVATE_RANGES if fetcher else (METADATA_RANGE,)
        for rule in rules:
            if not rule.get("to"):
                problems.append(f"{where}: an egress rule allows every destination")
            for peer in rule.get("to", []):
                if _allows_everywhere(peer, needed):
                    problems.append(f"{where}: egress to {peer['ipBlock']['cidr']} without excluding {needed}")
        if fetcher and not any("ipBlock" in peer for rule in rules for peer in rule.get("to", [])):
            problems.append(f"{where}: fetches URLs but may reach no public address")
    return problems


def _egress_rules(policies: list[dict], labels: dict) -> list[dict]:
    return [rule for p in policies if "Egress" in p["spec"]["policyTypes"]
            and selects(p["spec"]["podSelector"], labels) for rule in p["spec"].get("egress", [])]


def object_store_problems(docs: list[dict]) -> list[str]:
    """With BLOB_STORE=s3, every pod using the blob store may open HTTPS (or the endpoint's
    port) to an address outside the cluster: default-deny egress would otherwise fail every
    upload and every analysis."""
    settings = next(d["data"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("imagescan-config"))
    if settings.get("BLOB_STORE") != "s3":
        return []
    endpoint = urlsplit(settings.get("S3_ENDPOINT_URL") or "https://s3.amazonaws.com")
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    policies = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
    problems = []
    for where, template in pod_templates(docs):
        labels = template["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") not in BLOB_STORE_USERS:
            continue
        reachable = any(any(p.get("port") == port for p in rule.get("ports", []))
                        for rule in _egress_rules(policies, labels))
        if not reachable:
            problems.append(f"{where}: cannot reach the object store (egress to port {port})")
    return problems


def ingress_tls_problems(docs: list[dict]) -> list[str]:
    problems = []
    for doc in docs:
        if doc["kind"] != "Ingress":
            continue
        spec = doc["spec"]
        if not spec.get("ingressClassName"):
            problems.append("Ingress: no ingressClassName")
        tls_hosts = {host for entry in spec.get("tls", []) for host in entry.get("hosts", [])}
        if not spec.get("tls") or not all(entry.get("secretName") for entry in spec["tls"]):
            problems.append("Ingress: no TLS section with a certificate Secret")
        for rule in spec.get("rules", []):
            if rule.get("host") not in tls_hosts:
                problems.append(f"Ingress: host {rule.get('host')!r} is served without TLS")
        annotations = doc["metadata"].get("annotations", {})
        if annotations.get("nginx.ingress.kubernetes.io/ssl-redirect") != "true":
            problems.append("Ingress: plain HTTP is not redirected to HTTPS")
    return problems


def pod_security_problems(docs: list[dict]) -> list[str]:
    """The namespace enforces the restricted standard, and every pod meets it."""
    problems = []
    namespaces = [doc for doc in docs if doc["kind"] == "Namespace"]
    for namespace in namespaces:
        labels = namespace["metadata"].get("labels", {})
        if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
            problems.append(f"Namespace/{namespace['metadata']['name']}: restricted Pod Security not enforced")
    for where, template in pod_templates(docs):
        pod = template["spec"].get("securityContext", {})
        if not pod.get("runAsNonRoot") or pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod may run as root or without the RuntimeDefault seccomp profile")
        for container in _containers(template):
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}/{container['name']}: privilege escalation allowed")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}/{container['name']}: capabilities not all dropped")
    return problems


def service_account_problems(docs: list[dict]) -> list[str]:
    """A ServiceAccount per workload; an API token only where a Role says what it is for."""
    problems = []
    objects = index(docs)
    bound = {subject["name"] for doc in docs if doc["kind"] == "RoleBinding" for subject in doc["subjects"]}
    seen: dict[str, str] = {}
    for where, template in pod_templates(docs):
        account = template["spec"].get("serviceAccountName")
        if not account or ("ServiceAccount", account) not in objects:
            problems.append(f"{where}: no ServiceAccount of its own ({account!r})")
            continue
        if account in seen:
            problems.append(f"{where}: shares ServiceAccount {account!r} with {seen[account]}")
        seen[account] = where
        token = template["spec"].get("automountServiceAccountToken",
                                     objects[("ServiceAccount", account)].get("automountServiceAccountToken", True))
        if token and account not in bound:
            problems.append(f"{where}: mounts an API token it has no Role for")
    return problems


def rabbitmq_cluster_problems(docs: list[dict]) -> list[str]:
    statefulset = index(docs).get(("StatefulSet", "rabbitmq"))
    if statefulset is None or statefulset["spec"].get("replicas", 1) < 3:
        return ["RabbitMQ is not a three-node cluster"]
    config = " ".join(str(d.get("data", {})) for d in docs
                      if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("rabbitmq-config"))
    problems = []
    for needed in ("rabbit_peer_discovery_k8s", "rabbitmq_peer_discovery_k8s",
                   "target_group_size = 3", "vm_memory_high_watermark.absolute", "pause_minority"):
        if needed not in config:
            problems.append(f"RabbitMQ configuration lacks {needed!r}")
    template = statefulset["spec"]["template"]["spec"]
    cookie = [v for v in template.get("volumes", []) if v.get("secret", {}).get("items", [{}])[0].get("key") == "RABBITMQ_ERLANG_COOKIE"]
    if not cookie:
        problems.append("RabbitMQ nodes do not share the Erlang cookie of the Secret")
    headless = index(docs).get(("Service", statefulset["spec"]["serviceName"]), {})
    if not headless.get("spec", {}).get("publishNotReadyAddresses"):
        problems.append("booting RabbitMQ nodes cannot find each other (publishNotReadyAddresses)")
    return problems


def production_problems(docs: list[dict]) -> list[str]:
    """Every rule, for a rendered stack."""
    return (liveness_problems(docs) + startup_problems(docs) + redis_problems(docs)
            + disruption_problems(docs) + spread_problems(docs) + grace_problems(docs)
            + egress_problems(docs) + object_store_problems(docs) + ingress_tls_problems(docs) + pod_security_problems(docs)
            + service_account_problems(docs))
