"""Logs: one message per API call on <host>.rest.info, each insert on <host>.worker.info,
and the logs service printing everything with its routing key."""

import json
import logging
import os
import subprocess
import sys
import time

import pika
import pytest

from imagescan import topology
from imagescan.logbus import LogBusHandler
from tests.conftest import REPO_ROOT, wait_for_status
from tests.imagefactory import jpeg


def every_log_message(channel) -> str:
    """A queue of this channel's connection bound with '#' to the logs exchange; its name."""
    topology.declare_logs(channel)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, topology.LOG_EXCHANGE, routing_key="#")
    return queue


@pytest.fixture
def log_queue(settings):
    """A queue bound with '#' to the logs exchange; yields a function draining it."""
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(host=settings.rabbitmq_host, port=settings.rabbitmq_port)
    )
    channel = connection.channel()
    queue = every_log_message(channel)

    def drain(until, timeout=20.0):
        seen, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                if until(seen):
                    return seen
                time.sleep(0.05)
                continue
            seen.append((method.routing_key, json.loads(body)))
        raise AssertionError(f"log messages did not arrive; saw {seen}")

    yield drain
    connection.close()


@pytest.fixture
def log_bus(settings):
    handlers = [LogBusHandler(settings, "rest"), LogBusHandler(settings, "worker")]
    rest_logger, worker_logger = logging.getLogger("imagescan.rest"), logging.getLogger("imagescan.worker")
    rest_logger.addHandler(handlers[0])
    worker_logger.addHandler(handlers[1])
    for logger in (rest_logger, worker_logger):
        logger.setLevel(logging.DEBUG)
    yield
    rest_logger.removeHandler(handlers[0])
    worker_logger.removeHandler(handlers[1])


def test_api_calls_and_inserts_are_logged_with_one_request_id(settings, client, start_worker, log_queue, log_bus):
    start_worker()
    host = settings.hostname.replace(".", "-")
    response = client.put("/image/logged.jpg", data=jpeg(seed=31), headers={"X-Request-ID": "req-abc-123"})
    assert response.headers["X-Request-ID"] == "req-abc-123"
    wait_for_status(client, response.get_json()["hash"])
    client.get("/hash/" + "f" * 32)

    def complete(seen):
        return any(key == f"{host}.worker.info" and m.get("db_insert") for key, m in seen) and any(
            key == f"{host}.rest.info" and m.get("path", "").startswith("/hash/") for key, m in seen
        )

    seen = log_queue(complete)
    calls = [m for key, m in seen if key == f"{host}.rest.info" and "method" in m]
    upload = next(m for m in calls if m["path"] == "/image/logged.jpg")
    assert upload["status"] == 200 and upload["outcome"] == "ok" and upload["request_id"] == "req-abc-123"
    insert = next(m for key, m in seen if key == f"{host}.worker.info" and m.get("db_insert"))
    assert insert["request_id"] == "req-abc-123"
    assert any(key == f"{host}.rest.debug" for key, _ in seen), "details go to .debug"


def test_failed_calls_are_logged_with_their_outcome(settings, client, log_queue, log_bus):
    host = settings.hostname.replace(".", "-")
    client.post("/image/empty.jpg", data=b"")
    seen = log_queue(lambda seen: any(m.get("status") == 400 for _, m in seen))
    failure = next(m for key, m in seen if key == f"{host}.rest.info" and m.get("status") == 400)
    assert failure["outcome"] == "error" and "empty" in failure["reason"]


def test_logs_service_prints_each_message_with_its_routing_key(settings):
    env = {**os.environ, "RABBITMQ_HOST": settings.rabbitmq_host, "RABBITMQ_PORT": str(settings.rabbitmq_port)}
    service = subprocess.Popen([sys.executable, "-m", "logs"], cwd=REPO_ROOT, env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in service.stderr.readline()
        connection = pika.BlockingConnection(
            pika.ConnectionParameters(host=settings.rabbitmq_host, port=settings.rabbitmq_port)
        )
        connection.channel().basic_publish(topology.LOG_EXCHANGE, "box1.worker.info", b'{"message": "hi"}')
        connection.close()
        assert service.stderr.readline().strip() == 'box1.worker.info {"message": "hi"}'
    finally:
        service.terminate()
        service.wait(timeout=10)


def test_a_burst_of_records_reaches_the_bus_whole_and_in_order(settings, log_queue):
    handler = LogBusHandler(settings, "rest")
    burst = logging.getLogger("imagescan.rest.burst")
    burst.addHandler(handler)
    burst.setLevel(logging.INFO)
    try:
        for i in range(1200):  # more than one batch of the publishing thread
            burst.info("burst %d", i, extra={"request_id": f"burst-{i}"})
        seen = log_queue(lambda seen: sum(doc.get("logger") == burst.name for _, doc in seen) >= 1200)
    finally:
        burst.removeHandler(handler)
    messages = [doc["message"] for _, doc in seen if doc.get("logger") == burst.name]
    assert messages == [f"burst {i}" for i in range(1200)]


def test_records_larger_than_a_frame_reach_the_bus_whole_and_in_order(settings, log_queue):
    """Records are written many to a socket write; one over the connection's frame size
    (131,072 bytes by default) is split by pika and must still arrive whole, in its place."""
    handler = LogBusHandler(settings, "rest")
    big = logging.getLogger("imagescan.rest.big")
    big.addHandler(handler)
    big.setLevel(logging.INFO)
    long_text = "x" * 300_000
    try:
        big.info("before")
        big.info("long %s", long_text)
        big.info("after")
        seen = log_queue(lambda seen: sum(doc.get("logger") == big.name for _, doc in seen) >= 3)
    finally:
        big.removeHandler(handler)
    assert [doc["message"] for _, doc in seen if doc.get("logger") == big.name] == [
        "before", f"long {long_text}", "after"]


def test_bus_messages_say_they_are_json(settings):
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(host=settings.rabbitmq_host, port=settings.rabbitmq_port))
    channel = connection.channel()
    queue = every_log_message(channel)
    handler = LogBusHandler(settings, "worker")
    typed = logging.getLogger("imagescan.worker.typed")
    typed.addHandler(handler)
    typed.setLevel(logging.INFO)
    try:
        typed.info("typed")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is not None and json.loads(body).get("logger") == typed.name:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the record did not arrive")
    finally:
        typed.removeHandler(handler)
        connection.close()
    assert properties.content_type == "application/json"
    assert method.routing_key == topology.log_routing_key(settings.hostname, "worker", "info")
    assert method.exchange == topology.LOG_EXCHANGE


def test_an_upload_is_one_info_line_with_what_was_accepted(settings, client, log_queue, log_bus):
    host = settings.hostname.replace(".", "-")
    data = jpeg(seed=32)
    answer = client.put("/image/one-line.jpg", data=data, headers={"X-Request-ID": "req-one-line"})
    assert answer.status_code == 200
    seen = log_queue(lambda seen: any(m.get("request_id") == "req-one-line" and "method" in m for _, m in seen))
    lines = [m for key, m in seen if key == f"{host}.rest.info" and m.get("request_id") == "req-one-line"]
    assert len(lines) == 1
    line = lines[0]
    assert line["status"] == 200 and line["path"] == "/image/one-line.jpg" and line["md5"] == answer.get_json()["hash"]
    assert line["image_name"] == "one-line.jpg" and line["format"] == "JPEG" and line["bytes"] == len(data)
    assert line["new"] is True and line["image_status"] in ("queued", "processing", "done")
