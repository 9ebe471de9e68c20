"""`./deploy-all.sh local`: starts the whole stack once (with --with-prometheus, a Prometheus
scraping it), serves uploads, tells where the metrics are, and `down` stops all of it."""

import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.imagefactory import jpeg


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def running(pid: str) -> bool:
    """The process exists and is not a zombie (the runner's children are reparented, and
    whether anything reaps them depends on the machine's init)."""
    try:
        return Path(f"/proc/{pid.strip()}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack(tmp_path):
    env = {
        **os.environ,
        "IMAGESCAN_STATE_DIR": str(tmp_path / "state"),
        "PORT": str(free_port()), "REDIS_PORT": str(free_port()), "RABBITMQ_PORT": str(free_port()),
        "RABBITMQ_DIST_PORT": str(free_port()), "EPMD_PORT": str(free_port()),
        "WORKERS": "1", "PLATE_ENGINE": "none", "FACE_ENGINE": "none",
        "LOGS_METRICS_PORT": str(free_port()), "WORKER_METRICS_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
    }

    def run(*args):
        return subprocess.run([str(REPO_ROOT / "deploy-all.sh"), "local", *args], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300, check=False)

    yield run, env, Path(env["IMAGESCAN_STATE_DIR"])
    run("down")


def test_up_serves_uploads_twice_is_a_no_op_and_down_stops_everything(stack):
    run, env, state = stack
    first = run("up", "--with-prometheus")
    assert first.returncode == 0, first.stderr + first.stdout
    base = f"http://127.0.0.1:{env['PORT']}"
    assert f"ready: http://localhost:{env['PORT']}" in first.stdout
    worker_metrics = f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}/metrics"
    assert (f"metrics: rest {base}/metrics, worker {worker_metrics}, "
            f"logs http://127.0.0.1:{env['LOGS_METRICS_PORT']}/metrics") in first.stdout

    photo = jpeg(seed=41)
    request = urllib.request.Request(f"{base}/image/runner.jpg", data=photo, method="PUT")
    md5 = json.load(urllib.request.urlopen(request, timeout=10))["hash"]
    deadline, status = time.monotonic() + 60, None
    while time.monotonic() < deadline and status != "done":
        status = json.load(urllib.request.urlopen(f"{base}/images/{md5}", timeout=10))["status"]
        time.sleep(0.2)
    assert status == "done"
    assert b'imagescan_worker_images_total{outcome="done"} 1.0' in urllib.request.urlopen(worker_metrics).read()
    prometheus = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}/api/v1/query?query=up"

    def scraped_jobs():
        try:
            result = json.load(urllib.request.urlopen(prometheus, timeout=5))["data"]["result"]
        except OSError:
            return set()
        return {r["metric"]["job"] for r in result if r["value"][1] == "1"}

    deadline = time.monotonic() + 90
    while scraped_jobs() != {"rest", "worker", "logs"} and time.monotonic() < deadline:
        time.sleep(1)
    assert scraped_jobs() == {"rest", "worker", "logs"}
    stored = list((state / "blobs").rglob(hashlib.sha256(photo).hexdigest()))
    assert len(stored) == 1 and stored[0].read_bytes() == photo, "the original is a file, not in Redis"

    pids = {p.name: p.read_text() for p in state.glob("*.pid")}
    assert {"redis.pid", "rabbitmq.pid", "rest.pid", "logs.pid", "worker-1.pid", "prometheus.pid"} <= set(pids)
    second = run()
    assert second.returncode == 0
    assert second.stdout.count("already running") == 5
    assert {p.name: p.read_text() for p in state.glob("*.pid")} == pids, "nothing was started twice"
    assert "runner.jpg" in (state / "logs.log").read_text(), "the logs service printed the upload"

    down = run("down")
    assert down.returncode == 0, down.stderr
    for pid in pids.values():
        assert not running(pid), f"process {pid} still running"
    for name in ("PORT", "REDIS_PORT", "RABBITMQ_PORT", "EPMD_PORT", "WORKER_METRICS_PORT", "PROMETHEUS_PORT"):
        assert not port_open(int(env[name])), f"{name} still open"
