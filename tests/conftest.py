"""Shared fixtures: real Redis and RabbitMQ servers, the REST app, and in-process workers."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pika
import pytest
from pytest_rabbitmq import factories as rabbitmq_factories
from pytest_redis import factories as redis_factories

from imagescan import topology
from imagescan.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

redis_server = redis_factories.redis_proc(port=None)
redis_client = redis_factories.redisdb("redis_server")
rabbitmq_server = rabbitmq_factories.rabbitmq_proc(port=None, distribution_port=None)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A real Redis Cluster (three masters, one replica each) for the whole session; tests that
    use it flush it first (see tests/integration/conftest.py)."""
    from tests.rediscluster import LocalRedisCluster

    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def shared_data(*parts: str) -> Path:
    """A path under the shared test data, or a skip when that data is not beside the checkout."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


@pytest.fixture(scope="session")
def plate_recognizer():
    from imagescan.analyzers import load_plate_recognizer

    return load_plate_recognizer("rapidocr")


@pytest.fixture(scope="session")
def face_recognizer():
    from imagescan.analyzers import load_face_recognizer

    return load_face_recognizer("dlib")


def purge_work_queues(host: str, port: int) -> None:
    """Delete the work and dead-letter queues: each test starts with none waiting."""
    connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
    try:
        channel = connection.channel()
        for queue in (topology.WORK_QUEUE, topology.BULK_QUEUE, topology.DEAD_LETTER_QUEUE):
            channel.queue_delete(queue)
    finally:
        connection.close()


def queue_depth(settings: Settings, queue: str) -> int:
    """Messages ready in a queue of the test broker."""
    connection = pika.BlockingConnection(pika.ConnectionParameters(settings.rabbitmq_host, settings.rabbitmq_port))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


@pytest.fixture
def settings(redis_server, redis_client, rabbitmq_server, tmp_path) -> Settings:
    """Settings for one test against the real servers, with empty Redis and queues."""
    settings = Settings(
        redis_host=redis_server.host,
        redis_port=redis_server.port,
        rabbitmq_host=rabbitmq_server.host,
        rabbitmq_port=rabbitmq_server.port,
        max_upload_mb=5,
        worker_health_file=str(tmp_path / "worker.alive"),
        api_keys=("test-key-1", "test-key-2"),
        allow_private_urls=False,
    )
    purge_work_queues(settings.rabbitmq_host, settings.rabbitmq_port)
    return settings


@pytest.fixture
def publisher(settings):
    """The work publisher the REST uses, against the test broker."""
    from imagescan.broker import Publisher

    publisher = Publisher(settings)
    yield publisher
    publisher.close()


@pytest.fixture
def app(settings):
    from rest.app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["imagescan"].publisher.close()


@pytest.fixture
def client(app):
    return app.test_client()


class WorkerThread:
    """A real worker (consumer + handler) running in a thread of the test process."""

    def __init__(self, services):
        from worker.consumer import Consumer

        self.consumer = Consumer(services)
        self.thread = threading.Thread(target=self.consumer.run, name="test-worker", daemon=True)

    def start(self) -> WorkerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(timeout=30)


def engine_free_worker(settings: Settings) -> WorkerThread:
    """A started worker without recognition engines (EXIF and storage only), on its own connection."""
    from imagescan.analyzers import NoFaces, NoPlates
    from imagescan.blobs import open_blob_store
    from imagescan.faceindex import FaceIndex
    from imagescan.store import ImageStore, connect_redis
    from worker.services import WorkerServices

    client = connect_redis(settings)
    return WorkerThread(WorkerServices(
        settings=settings, redis=client, store=ImageStore(client), blobs=open_blob_store(settings, client),
        plates=NoPlates(), faces=NoFaces(), face_index=FaceIndex(client, settings.face_tolerance),
    )).start()


@pytest.fixture
def worker_services(settings, plate_recognizer, face_recognizer):
    """WorkerServices for the test servers, sharing the engines loaded once per session."""
    from imagescan.faceindex import FaceIndex
    from imagescan.store import open_storage
    from worker.services import WorkerServices

    def build(settings=settings, plates=plate_recognizer, faces=face_recognizer):
        client, store, blobs = open_storage(settings)
        return WorkerServices(settings=settings, redis=client, store=store, blobs=blobs, plates=plates,
                              faces=faces, face_index=FaceIndex(client, settings.face_tolerance))

    return build


@pytest.fixture
def start_worker(worker_services):
    """start_worker() runs one more worker; all are stopped when the test ends."""
    started: list[WorkerThread] = []

    def start(services=None) -> WorkerThread:
        worker = WorkerThread(services or worker_services()).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for_status(client, digest: str, statuses=("done", "failed"), timeout: float = 90) -> dict:
    """Poll /images/<digest> until its status is one of `statuses`; the last document."""
    deadline = time.monotonic() + timeout
    document = {}
    while time.monotonic() < deadline:
        response = client.get(f"/images/{digest}")
        if response.status_code == 200:
            document = response.get_json()
            if document["status"] in statuses:
                return document
        time.sleep(0.1)
    raise AssertionError(f"{digest} did not reach {statuses} in {timeout}s: {document}")


class S3Server:
    """moto's S3-compatible server on a free loopback port, in this process; `stop()` closes the
    port (clients get connection refused) and `start()` opens it again with the data kept."""

    def __init__(self):
        # moto keeps its data per process, not per server: a bucket of its own for each test
        self.bucket = f"imagescan-test-{uuid.uuid4().hex[:12]}"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> S3Server:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def settings(self, settings: Settings, prefix: str = "originals/") -> Settings:
        return settings.replace(blob_store="s3", s3_bucket=self.bucket, s3_prefix=prefix,
                                s3_endpoint_url=self.url, s3_region="us-east-1", network_timeout=2.0)


@pytest.fixture(scope="session")
def s3_credentials():
    """Dummy credentials in the variables boto3 reads (the server accepts any)."""
    patch = pytest.MonkeyPatch()
    for name, value in {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret",
                        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        patch.setenv(name, value)
    yield
    patch.undo()


@pytest.fixture
def s3_server(s3_credentials):
    """A fresh S3 server with an empty bucket, stopped after the test."""
    import boto3

    server = S3Server().start()
    boto3.client("s3", endpoint_url=server.url, region_name="us-east-1").create_bucket(Bucket=server.bucket)
    yield server
    server.stop()
