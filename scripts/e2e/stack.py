#!/usr/bin/env python3
"""`make e2e`: build the images, run the stack from k8s/ under podman, drive it from outside.

Steps: images.sh builds the base and the images (build cache reused); the k8s/ base is
rendered with an overlay that only names the locally built images; podman_manifests.py turns
the result into pods for `podman kube play --network host` (hosts, ports, volumes, Secrets);
Redis and RabbitMQ start first, then rest, worker and logs; drive.py checks the stack from
outside; everything is torn down, leaving only the build cache. The figures come last.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import drive
import podman_manifests

TAG = os.environ.get("E2E_TAG", "e2e")
OWN_IMAGES = ("imagescan-rest", "imagescan-worker", "imagescan-logs")
INFRA_IMAGE = "imagescan-e2e-infra"
# Images of the manifests that no registry serves here: the stand-in built by images.sh.
STAND_INS = ("redis", "rabbitmq")


def log(message: str) -> None:
    print(f"e2e: {message}", file=sys.stderr, flush=True)


def podman(*args: str, check: bool = True) -> str:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kubectl() -> str:
    return shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")


def render(workdir: Path) -> Path:
    """k8s/base plus an overlay that only names the images built here."""
    k8s = workdir / "k8s"
    shutil.copytree(REPO / "k8s", k8s)
    images = [{"name": n, "newName": f"localhost/{n}", "newTag": TAG} for n in OWN_IMAGES]
    images += [{"name": n, "newName": f"localhost/{INFRA_IMAGE}", "newTag": TAG} for n in STAND_INS]
    overlay = k8s / "e2e"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
         "resources": ["../base"], "images": images}))
    rendered = workdir / "rendered.yaml"
    text = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, check=True).stdout
    rendered.write_text(text)
    return rendered


def secret_values(rendered: Path, ports: dict) -> dict[str, str]:
    """Fresh values for every key of the rendered Secret (never the placeholders)."""
    keys = next(d for d in yaml.safe_load_all(rendered.read_text())
                if d and d["kind"] == "Secret")["data"]
    values = {key: ("imagescan" if key.endswith("_USER") else secrets.token_hex(16)) for key in keys}
    # No deploy script runs here to create the services' broker user (scripts/rabbitmq-users.sh):
    # on this single host they log in as the broker's first user.
    if "RABBITMQ_ADMIN_USER" in values:
        values["RABBITMQ_ADMIN_USER"], values["RABBITMQ_ADMIN_PASSWORD"] = (
            values["RABBITMQ_USER"], values["RABBITMQ_PASSWORD"])
    if "RABBITMQ_AMQP_URI" in values:
        values["RABBITMQ_AMQP_URI"] = (f"amqp://{values['RABBITMQ_USER']}:{values['RABBITMQ_PASSWORD']}"
                                       f"@127.0.0.1:{ports['rabbitmq']}/")
    return values


def start_s3(port: int) -> subprocess.Popen:
    """moto's S3-compatible server from the project's virtualenv, on loopback."""
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if server is None:
        raise SystemExit("BLOB_STORE=s3 needs moto[server] in the virtualenv (make venv)")
    process = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    drive.wait_until(lambda: drive.port_open(port), 60, "the S3 server")
    return process


def create_bucket(url: str, rendered: Path, values: dict) -> None:
    """The bucket the settings name. An operator creates it once (k8s/README.md, "Object
    storage"); here the S3 server is new for each run, so the run creates it."""
    import boto3

    region = podman_manifests.rendered_setting(rendered, "S3_REGION") or "us-east-1"
    client = boto3.client("s3", endpoint_url=url, region_name=region,
                          aws_access_key_id=values.get("AWS_ACCESS_KEY_ID", "e2e"),
                          aws_secret_access_key=values.get("AWS_SECRET_ACCESS_KEY", "e2e"))
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    client.create_bucket(Bucket=podman_manifests.rendered_setting(rendered, "S3_BUCKET"), **where)


class Stack:
    """The pods of one run; torn down (pods, their volumes, the image tags) in any case."""

    def __init__(self, outdir: Path):
        self.outdir = outdir
        self.pods: dict[str, str] = {}
        self.played: list[str] = []
        self.volumes_before = set(podman("volume", "ls", "-q").split())
        self.pause_images_before = pause_images()

    def play(self, workload: str) -> float:
        self.played.append(workload)
        started = time.monotonic()
        configmaps = ",".join(str(p) for p in sorted(self.outdir.glob("configmap-*.yaml")))
        output = podman("kube", "play", "--network", "host", "--configmap", configmaps,
                        str(self.outdir / f"{workload}.yaml"))
        lines = output.split()
        self.pods[workload] = lines[lines.index("Pod:") + 1]
        return started

    def container(self, workload: str) -> str:
        """The id of the workload's own container (not the pod's infra container)."""
        info = json.loads(podman("pod", "inspect", self.pods[workload]))
        info = info[0] if isinstance(info, list) else info
        ids = [c["Id"] for c in info["Containers"] if c["Id"] != info.get("InfraContainerID")]
        return ids[0]

    def logs(self, workload: str) -> str:
        result = subprocess.run(["podman", "logs", self.container(workload)], capture_output=True, text=True,
                                check=False)
        return result.stdout + result.stderr

    def teardown(self) -> None:
        for workload in reversed(self.played):  # podman names a Deployment's pod <name>-pod-0
            podman("pod", "rm", "--force", "--time", "10", self.pods.get(workload, f"{workload}-pod-0"), check=False)
        for volume in set(podman("volume", "ls", "-q").split()) - self.volumes_before:
            podman("volume", "rm", "--force", volume, check=False)
        # The pod infra image podman builds for itself on first use.
        for image in pause_images() - self.pause_images_before:
            podman("rmi", image, check=False)


def pause_images() -> set[str]:
    return set(podman("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=*/podman-pause").split())


def untag_images() -> None:
    """Drop the tags; the images stay as untagged build cache for the next run."""
    for name in (*OWN_IMAGES, INFRA_IMAGE):
        podman("untag", f"localhost/{name}:{TAG}", check=False)


def image_sizes() -> dict[str, int]:
    return {name: int(podman("image", "inspect", "--format", "{{.Size}}", f"localhost/{name}:{TAG}").strip())
            for name in (*OWN_IMAGES, INFRA_IMAGE)}


def build_images(workdir: Path) -> dict[str, float]:
    timings = workdir / "build-times.txt"
    subprocess.run(["bash", str(HERE / "images.sh"), str(timings)], check=True)
    return {name: float(seconds) for name, seconds in (line.split() for line in timings.read_text().splitlines())}


def run(workdir: Path) -> dict:
    figures: dict = {}
    started = time.monotonic()
    figures["build_seconds"] = build_images(workdir)
    figures["image_bytes"] = image_sizes()
    rendered = render(workdir)
    ports = {name: free_port() for name in ("rest", "redis", "rabbitmq", "rabbitmq_dist", "epmd",
                                            "worker_metrics", "logs_metrics")}
    blob_store = podman_manifests.rendered_setting(rendered, "BLOB_STORE")
    s3 = None
    if blob_store == "s3":
        ports["s3"] = free_port()
        s3 = start_s3(ports["s3"])
    values = secret_values(rendered, ports)
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    s3_url = f"http://127.0.0.1:{ports['s3']}" if s3 else None
    if s3_url:
        create_bucket(s3_url, rendered, values)
    outdir = workdir / "podman"
    podman_manifests.write(podman_manifests.convert(docs, ports, values, s3_url, outdir / "files"), outdir)
    stack = Stack(outdir)
    try:
        figures.update(drive.run_stack(stack, ports, values, s3_url, blob_store))
    finally:
        stack.teardown()
        if s3 is not None:
            s3.terminate()
            s3.wait(10)
    figures["total_seconds"] = round(time.monotonic() - started, 1)
    return figures


def main() -> int:
    os.environ.setdefault("CONTAINERS_CONF", str(HERE / "containers.conf"))
    workdir = Path(tempfile.mkdtemp(prefix="imagescan-e2e-"))
    try:
        figures = run(workdir)
    finally:
        untag_images()
        shutil.rmtree(workdir, ignore_errors=True)
    drive.print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
