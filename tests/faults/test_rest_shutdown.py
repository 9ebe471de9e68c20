"""`python -m rest` (gunicorn) stopped with SIGTERM finishes the upload in flight, then exits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.faults.conftest import report_figures, wait_for_status
from tests.faults.servers import REPO_ROOT, free_port, wait_until
from tests.imagefactory import jpeg

pytestmark = pytest.mark.faults


def start_rest(stack, port: int) -> subprocess.Popen:
    settings = stack.settings
    env = {**os.environ, "PORT": str(port), "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(settings.redis_port),
           "RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_PORT": str(settings.rabbitmq_port),
           "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "2", "HOSTNAME": "fault-rest"}
    with open(stack.root / "rest.stderr", "ab") as log:  # the child keeps its own copy
        process = subprocess.Popen([sys.executable, "-m", "rest"], cwd=REPO_ROOT, env=env,
                                   start_new_session=True, stdout=subprocess.DEVNULL, stderr=log)

    def healthy() -> bool:
        assert process.poll() is None, (stack.root / "rest.stderr").read_text()[-2000:]
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(healthy, 30, "gunicorn to answer", interval=0.2)
    return process


def test_sigterm_lets_gunicorn_finish_the_upload_in_flight(stack, record_property):
    stack = stack()
    port = free_port()
    rest = start_rest(stack, port)
    try:
        image = jpeg(640, 480, seed=70)
        half = len(image) // 2
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /scan/image/inflight.jpg HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(image) + image[:half])
            time.sleep(0.5)  # the request is being read by a gunicorn thread
            os.kill(rest.pid, signal.SIGTERM)
            time.sleep(1.0)  # shutdown has begun; the client is still sending
            sock.sendall(image[half:])
            sock.settimeout(20)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer[:500]
        sha224 = json.loads(body)["hash"]
        assert rest.wait(40) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if rest.poll() is None:
            os.killpg(rest.pid, signal.SIGKILL)
            rest.wait(10)
    stack.start_worker()
    done = wait_for_status(stack.client, sha224)["status"] == "done"
    figure = report_figures(record_property, "REST SIGTERM", 1, int(done), int(not done))
    assert done, figure
