"""Fixtures for fault tests: servers and workers in processes the test can kill.

`shared_rabbit` serves the tests that never stop RabbitMQ (it takes seconds to boot);
a test that stops the broker starts its own with `stack(own_rabbit=True)`. Redis is cheap
to start, so every test has its own.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from imagescan.config import Settings
from tests.conftest import purge_work_queues, wait_for_status
from tests.faults.servers import RabbitServer, RedisServer, WorkerProcess, wait_until

MAX_ATTEMPTS = 3


@pytest.fixture(scope="session")
def shared_rabbit(tmp_path_factory):
    server = RabbitServer(tmp_path_factory.mktemp("fault-rabbit")).start()
    yield server
    server.shutdown()


class Stack:
    """Own Redis, a RabbitMQ, the REST app in process, and worker processes on demand."""

    def __init__(self, root, redis_server: RedisServer, rabbit: RabbitServer):
        self.root = root
        self.redis_server = redis_server
        self.rabbit = rabbit
        self.fault_dir = root / "fault"
        self.fault_dir.mkdir()
        self.settings = Settings(
            redis_host="127.0.0.1", redis_port=redis_server.port,
            rabbitmq_host="127.0.0.1", rabbitmq_port=rabbit.port,
            max_attempts=MAX_ATTEMPTS, network_timeout=2.0, max_upload_mb=5,
            worker_health_file=str(root / "rest.alive"),
        )
        self.workers: list[WorkerProcess] = []
        self._app = None

    @property
    def app(self):
        if self._app is None:
            from rest.app import create_app

            self._app = create_app(self.settings)
            self._app.config["TESTING"] = True
        return self._app

    @property
    def client(self):
        return self.app.test_client()

    def worker_env(self, **extra) -> dict:
        env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("REDIS_", "RABBITMQ_", "WORKER_", "PLATE_", "FACE_"))
        }
        env.update({
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis_server.port),
            "RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_PORT": str(self.rabbit.port),
            "PLATE_ENGINE": "fault", "FACE_ENGINE": "none", "MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "NETWORK_TIMEOUT": "2", "LOG_LEVEL": "INFO", "FAULT_DIR": str(self.fault_dir),
            "WORKER_HEALTH_FILE": str(self.root / f"worker{len(self.workers)}.alive"),
            "HOSTNAME": f"fault-worker-{len(self.workers)}",
        })
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def start_worker(self, *, child_only: bool = True, **env) -> WorkerProcess:
        """A worker process; child_only skips the supervisor (a SIGKILL then kills the worker)."""
        worker = WorkerProcess(self.root, self.worker_env(**env), child_only=child_only,
                               name=f"worker{len(self.workers)}")
        self.workers.append(worker)
        return worker

    def fault_lines(self, name: str) -> list[str]:
        path = self.fault_dir / name
        return path.read_text().splitlines() if path.exists() else []

    def wait_for_file(self, name: str, timeout: float = 30):
        return wait_until(lambda: list(self.fault_dir.glob(name)), timeout, f"{name} in the fault dir")

    def purge_queues(self) -> None:
        purge_work_queues("127.0.0.1", self.rabbit.port)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=10)
        if self._app is not None:
            self._app.extensions["imagescan"].publisher.close()
        self.redis_server.stop()


@pytest.fixture
def stack(request, tmp_path, shared_rabbit):
    """stack(own_rabbit=False, appendfsync="everysec") -> Stack; all it started is stopped after."""
    made: list[tuple[Stack, RabbitServer | None]] = []

    def make(own_rabbit: bool = False, appendfsync: str = "everysec") -> Stack:
        rabbit = RabbitServer(tmp_path).start() if own_rabbit else shared_rabbit
        built = Stack(tmp_path, RedisServer(tmp_path, appendfsync).start(), rabbit)
        if not own_rabbit:
            built.purge_queues()
        made.append((built, rabbit if own_rabbit else None))
        return built

    yield make
    for built, own in made:
        built.close()
        if own is not None:
            own.shutdown()


def report_figures(record_property, name: str, accepted: int, processed: int, lost: int) -> str:
    figure = f"{name}: uploads accepted={accepted} processed={processed} lost={lost}"
    print(figure)
    record_property("figures", figure)
    return figure


def wait_all_done(client, digests, timeout: float = 60) -> dict[str, dict]:
    """digest -> its final document; fails when one does not finish in time."""
    deadline = time.monotonic() + timeout
    return {
        digest: wait_for_status(client, digest, timeout=max(1.0, deadline - time.monotonic()))
        for digest in digests
    }


def assert_none_lost(record_property, name: str, client, digests, timeout: float = 60) -> dict[str, dict]:
    """Wait for every accepted upload, report `accepted/processed/lost`, fail unless all are done.

    Returns digest -> final document; one that never finished counts as lost."""
    digests = list(dict.fromkeys(digests))
    deadline = time.monotonic() + timeout
    documents = {}
    for digest in digests:
        try:
            documents[digest] = wait_for_status(client, digest, timeout=max(1.0, deadline - time.monotonic()))
        except AssertionError:
            documents[digest] = {"status": "not finished"}
    processed = sum(document["status"] == "done" for document in documents.values())
    figure = report_figures(record_property, name, len(digests), processed, len(digests) - processed)
    assert processed == len(digests), figure
    return documents


def upload(client, data: bytes, name: str = "photo.jpg", **headers) -> str:
    """The image's SHA-224 (the /scan answer); fails unless the upload was accepted."""
    response = client.post(f"/scan/image/{name}", data=data, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["hash"]


def refused_while_down(client, data: bytes, name: str, within: float) -> float:
    """Upload from a thread: it must be answered 503 + Retry-After within `within` seconds
    (never hang, never a 2xx). Returns how long the answer took."""
    answers: list = []
    sender = threading.Thread(target=lambda: answers.append(client.post(f"/scan/image/{name}", data=data)))
    started = time.monotonic()
    sender.start()
    sender.join(within)
    assert not sender.is_alive(), f"the upload of {name} was not answered within {within:.0f}s"
    assert answers[0].status_code == 503, answers[0].get_json()
    assert int(answers[0].headers["Retry-After"]) > 0
    return time.monotonic() - started
