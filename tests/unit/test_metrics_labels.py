"""Metric labels stay within small fixed sets, and failures of a backing service are counted
by which service failed (in-process app; Redis and RabbitMQ ports closed on purpose)."""

from __future__ import annotations

import socket

import pika.exceptions
import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from imagescan.broker import BrokerUnavailable
from imagescan.config import Settings
from tests.imagefactory import jpeg


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(("key", "labels"), [
    ("web-7d9f.rest.info", {"service": "rest", "level": "info"}),
    ("a.b.c.worker.debug", {"service": "worker", "level": "debug"}),
    ("host.Evil Service!.info", {"service": "other", "level": "info"}),
    ("host.rest.trace", {"service": "rest", "level": "other"}),
    ("no-dots", {"service": "other", "level": "other"}),
])
def test_logs_labels_leave_out_the_host_and_bound_the_rest(key, labels):
    from logs.metrics import count_message

    before = sample("imagescan_logs_messages_total", **labels)
    count_message(key)
    assert sample("imagescan_logs_messages_total", **labels) == before + 1


def raised_from(outer: ValueError, inner: Exception) -> ValueError:
    try:
        try:
            raise inner
        except type(inner):
            raise outer from None  # the context is kept even when the cause is hidden
    except ValueError as error:
        return error


@pytest.mark.parametrize(("error", "dependency"), [
    (redis.ConnectionError("down"), "redis"),
    (BrokerUnavailable("refused"), "rabbitmq"),
    (pika.exceptions.AMQPConnectionError("gone"), "rabbitmq"),
    (raised_from(ValueError("503"), redis.TimeoutError("slow")), "redis"),
    (raised_from(ValueError("503"), PermissionError("blob dir")), "blob_store"),
    (ValueError("a bug"), None),
])
def test_dependency_of_an_error_follows_its_chain(error, dependency):
    from rest.metrics import dependency_of

    assert dependency_of(error) == dependency


def test_an_upload_with_redis_and_rabbitmq_down_counts_the_failure(tmp_path):
    from rest.app import create_app

    settings = Settings(redis_port=closed_port(), rabbitmq_port=closed_port(), network_timeout=0.5,
                        redis_host="127.0.0.1", rabbitmq_host="127.0.0.1")
    app = create_app(settings)
    client = app.test_client()
    errors = sample("imagescan_dependency_errors_total", dependency="redis")
    refused = sample("imagescan_uploads_total", outcome="refused", reason="unavailable")
    answered = sample("imagescan_http_requests_total", route="/image/<path:filename>", method="PUT", status="503")

    assert client.put("/image/down.jpg", data=jpeg(seed=3)).status_code == 503
    assert client.get("/no/such/route/abc123").status_code == 404

    assert sample("imagescan_dependency_errors_total", dependency="redis") == errors + 1
    assert sample("imagescan_uploads_total", outcome="refused", reason="unavailable") == refused + 1
    assert sample("imagescan_http_requests_total", route="/image/<path:filename>", method="PUT",
                  status="503") == answered + 1
    assert sample("imagescan_http_requests_total", route="unmatched", method="GET", status="404") >= 1
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}
    up = {s.labels["dependency"]: s.value for s in families["imagescan_dependency_up"].samples}
    assert up == {"redis": 0.0, "rabbitmq": 0.0}
    assert families["imagescan_queue_messages"].samples == []  # unknown, not zero
    app.extensions["imagescan"].publisher.close()
