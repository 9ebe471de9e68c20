"""The work publisher: many threads over one connection, each publish back only once the
broker confirmed it (or with BrokerUnavailable). Real RabbitMQ."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from imagescan import topology
from imagescan.broker import BrokerUnavailable, Publisher
from tests.conftest import queue_depth


def _delete_queue(settings, queue: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(settings.rabbitmq_host, settings.rabbitmq_port))
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


def test_threads_share_one_connection_and_each_publish_returns_confirmed(settings, publisher, monkeypatch):
    opened = []
    real = pika.BlockingConnection
    monkeypatch.setattr(pika, "BlockingConnection", lambda *a, **k: opened.append(1) or real(*a, **k))
    with ThreadPoolExecutor(16) as threads:
        list(threads.map(lambda i: publisher.publish(topology.ANALYZE, request_id=f"r{i}", sha256=f"{i:064x}"),
                         range(300)))
    assert len(opened) == 1
    assert queue_depth(settings, topology.WORK_QUEUE) == 300  # every one confirmed before its publish returned
    assert not publisher._unconfirmed and not publisher._waiting


def test_every_publish_is_confirmed_and_routed_to_its_lane(settings, publisher):
    with ThreadPoolExecutor(8) as threads:
        list(threads.map(lambda i: publisher.publish(topology.ANALYZE, sha256=f"{i:064x}", bulk=i % 2 == 1),
                         range(40)))
    assert queue_depth(settings, topology.WORK_QUEUE) == 20
    assert queue_depth(settings, topology.BULK_QUEUE) == 20


def test_the_message_says_what_to_do_and_who_asked(settings, publisher):
    publisher.publish(topology.ANALYZE, request_id="abc-1", sha256="f" * 64)
    connection = pika.BlockingConnection(pika.ConnectionParameters(settings.rabbitmq_host, settings.rabbitmq_port))
    try:
        method, properties, body = connection.channel().basic_get(topology.WORK_QUEUE, auto_ack=True)
    finally:
        connection.close()
    assert method.routing_key == topology.ANALYZE
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    assert properties.content_type == "application/json"
    assert properties.correlation_id == "abc-1"
    assert body == b'{"kind":"analyze","request_id":"abc-1","sha256":"' + b"f" * 64 + b'"}'


def test_a_message_no_queue_takes_is_refused_not_lost(settings, publisher):
    publisher.publish(topology.ANALYZE, sha256="1" * 64)  # connected, queues declared
    _delete_queue(settings, topology.WORK_QUEUE)  # an operator deletes the queue meanwhile
    with pytest.raises(BrokerUnavailable, match="work queue is missing"):
        publisher.publish(topology.ANALYZE, sha256="2" * 64)
    publisher.publish(topology.ANALYZE, sha256="3" * 64, bulk=True)  # the other lane still routes
    assert queue_depth(settings, topology.BULK_QUEUE) == 1


def test_a_connection_the_broker_closed_is_replaced_on_the_next_publish(settings, publisher, rabbitmq_server):
    publisher.publish(topology.ANALYZE, sha256="1" * 64)
    first = publisher._connection
    rabbitmq_server.rabbitctl_output("close_all_connections", "closed by the test")
    time.sleep(0.5)
    publisher.publish(topology.ANALYZE, sha256="2" * 64)
    assert publisher._connection is not first
    assert queue_depth(settings, topology.WORK_QUEUE) == 2


def test_an_unreachable_broker_is_a_prompt_refusal(settings):
    publisher = Publisher(settings.replace(rabbitmq_port=1, network_timeout=1.0))
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="unreachable"):
            publisher.publish(topology.ANALYZE, sha256="1" * 64)
        assert time.monotonic() - started < 5
        assert publisher.ping() is False
    finally:
        publisher.close()


def test_ping_reports_a_reachable_broker_and_a_closed_publisher_refuses(settings, publisher):
    assert publisher.ping() is True  # opens the connection when there is none
    assert publisher.ping() is True
    publisher.close()
    with pytest.raises(BrokerUnavailable, match="closed"):
        publisher.publish(topology.ANALYZE, sha256="1" * 64)


def test_a_forked_process_publishes_on_a_connection_of_its_own(settings, publisher):
    publisher.publish(topology.ANALYZE, sha256="1" * 64)  # the parent's thread and connection exist
    child = os.fork()
    if child == 0:  # gunicorn forks its workers the same way
        try:
            publisher.publish(topology.ANALYZE, sha256="2" * 64)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the exit code is the report
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    publisher.publish(topology.ANALYZE, sha256="3" * 64)  # the parent's connection is untouched
    assert queue_depth(settings, topology.WORK_QUEUE) == 3
