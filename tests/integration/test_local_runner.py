"""`./deploy-all.sh local`: starts the whole stack once, serves uploads, and `down` stops all of it."""

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
    }

    def run(*args):
        return subprocess.run([str(REPO_ROOT / "deploy-all.sh"), "local", *args], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300, check=False)

    yield run, env, Path(env["IMAGESCAN_STATE_DIR"])
    run("down")


def test_up_serves_uploads_twice_is_a_no_op_and_down_stops_everything(stack):
    run, env, state = stack
    first = run()
    assert first.returncode == 0, first.stderr + first.stdout
    base = f"http://127.0.0.1:{env['PORT']}"
    assert f"ready: http://localhost:{env['PORT']}" in first.stdout

    photo = jpeg(seed=41)
    request = urllib.request.Request(f"{base}/image/runner.jpg", data=photo, method="PUT")
    md5 = json.load(urllib.request.urlopen(request, timeout=10))["hash"]
    deadline, status = time.monotonic() + 60, None
    while time.monotonic() < deadline and status != "done":
        status = json.load(urllib.request.urlopen(f"{base}/images/{md5}", timeout=10))["status"]
        time.sleep(0.2)
    assert status == "done"
    stored = list((state / "blobs").rglob(hashlib.sha256(photo).hexdigest()))
    assert len(stored) == 1 and stored[0].read_bytes() == photo, "the original is a file, not in Redis"

    pids = {p.name: p.read_text() for p in state.glob("*.pid")}
    assert {"redis.pid", "rabbitmq.pid", "rest.pid", "logs.pid", "worker-1.pid"} <= set(pids)
    second = run()
    assert second.returncode == 0
    assert second.stdout.count("already running") == 5
    assert {p.name: p.read_text() for p in state.glob("*.pid")} == pids, "nothing was started twice"
    assert "runner.jpg" in (state / "logs.log").read_text(), "the logs service printed the upload"

    down = run("down")
    assert down.returncode == 0, down.stderr
    for pid in pids.values():
        assert not running(pid), f"process {pid} still running"
    for name in ("PORT", "REDIS_PORT", "RABBITMQ_PORT", "EPMD_PORT"):
        assert not port_open(int(env[name])), f"{name} still open"
