"""The REST's metrics and its `/metrics` route.

Per request only in-process counters move (no Redis or RabbitMQ call): the route label is
Flask's URL rule template (`/images/<digest>`), never the raw path, so digests and filenames
never become label values. The queue depths and whether Redis and RabbitMQ answer are read
when /metrics is scraped, at most every QUEUE_CACHE_SECONDS per process.
"""

from __future__ import annotations

import functools
import threading
import time

import pika.exceptions
import redis
from flask import Flask, Response, current_app, g
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from imagescan import metrics, topology
from imagescan.broker import BROKER_ERRORS, BrokerUnavailable, close_quietly, connect

from .services import EXTENSION

QUEUE_CACHE_SECONDS = 5.0
_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}
# Why an upload was refused, from the status it was answered with.
REFUSAL_REASONS = {400: "invalid", 401: "unauthorized", 403: "unauthorized", 404: "unknown_link",
                   413: "too_large", 415: "unsupported", 429: "rate_limited", 503: "unavailable"}
QUEUES = {"work": topology.WORK_QUEUE, "dead_letter": topology.DEAD_LETTER_QUEUE}

REQUESTS = Counter("imagescan_http_requests", "HTTP requests answered, by route template, method and status",
                   ["route", "method", "status"])
DURATION = Histogram("imagescan_http_request_duration_seconds", "Time to answer an HTTP request",
                     ["route", "method"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
UPLOADS = Counter("imagescan_uploads", "Images received: accepted (new or known bytes) or refused (why)",
                  ["outcome", "reason"])
DEPENDENCY_ERRORS = Counter("imagescan_dependency_errors",
                            "Requests answered 503 because a backing service failed",
                            ["dependency"])
for _dependency in ("redis", "rabbitmq", "blob_store"):  # zeros from the start: rate() and alerts see the first
    DEPENDENCY_ERRORS.labels(_dependency)


def instrument(app: Flask) -> None:
    """The /metrics route; requests are counted by `observe`, called from the app's after-request hook."""
    app.extensions["imagescan.metrics"] = metrics.scrape_registry(BackendCollector(app))
    app.add_url_rule("/metrics", "metrics", _metrics_view, methods=["GET"])


# (route, method, status) -> its request counter and duration histogram. `labels()` takes a
# lock and builds the key on every call; the combinations are few (routes x methods x statuses).
_children: dict[tuple[str, str, int], tuple] = {}


def observe(called, status: int, seconds: float, upload_attempted: bool) -> None:
    """Count an answered request (`called`: the request itself, not the proxy)."""
    rule = called.url_rule
    route = rule.rule if rule is not None else "unmatched"
    method = called.method if called.method in _METHODS else "other"
    children = _children.get((route, method, status))
    if children is None:
        children = _children.setdefault((route, method, status),
                                        (REQUESTS.labels(route, method, str(status)), DURATION.labels(route, method)))
    children[0].inc()
    children[1].observe(seconds)
    # A body over MAX_UPLOAD_MB is refused (413) before any route code sees the image.
    if status >= 400 and (upload_attempted or status == 413):
        UPLOADS.labels("refused", REFUSAL_REASONS.get(status, "other")).inc()


def _metrics_view():
    body, content_type = metrics.exposition(current_app.extensions["imagescan.metrics"])
    return Response(body, content_type=content_type)


# ---- uploads and dependency errors -------------------------------------------------------


def marks_upload(function):
    """The request tries to upload an image: a 4xx/5xx answer to it counts as a refused upload."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        g.upload_attempted = True
        return function(*args, **kwargs)

    return wrapper


def upload_accepted(new: bool) -> None:
    UPLOADS.labels("accepted", "new" if new else "known").inc()


def dependency_of(error: BaseException | None) -> str | None:
    """Which backing service an error (or the error it was raised from) came from."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, BrokerUnavailable | pika.exceptions.AMQPError):
            return "rabbitmq"
        if isinstance(error, redis.RedisError):
            return "redis"
        if isinstance(error, OSError):
            return "blob_store"
        error = error.__cause__ or error.__context__
    return None


def count_dependency_error(error: BaseException) -> None:
    dependency = dependency_of(error)
    if dependency is not None:
        DEPENDENCY_ERRORS.labels(dependency).inc()


# ---- read at scrape time -----------------------------------------------------------------


class BackendCollector:
    """Queue depths from RabbitMQ and whether Redis and RabbitMQ answer, cached a few seconds."""

    def __init__(self, app: Flask):
        self.app = app
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._depths: dict[str, int] = {}
        self._up: dict[str, bool] = {}

    def collect(self):
        with self._lock:
            if time.monotonic() - self._read_at >= QUEUE_CACHE_SECONDS:
                self._refresh()
            depths, up = dict(self._depths), dict(self._up)
        queue_family = GaugeMetricFamily("imagescan_queue_messages", "Messages waiting in a RabbitMQ queue",
                                         labels=["queue"])
        for label, depth in depths.items():
            queue_family.add_metric([label], depth)
        up_family = GaugeMetricFamily("imagescan_dependency_up", "1 when the backing service answered",
                                      labels=["dependency"])
        for dependency, answered in up.items():
            up_family.add_metric([dependency], 1.0 if answered else 0.0)
        return [queue_family, up_family]

    def _refresh(self) -> None:
        services = self.app.extensions[EXTENSION]
        self._depths = _queue_depths(services.settings)
        self._up = {"redis": services.store.ping(), "rabbitmq": bool(self._depths)}
        self._read_at = time.monotonic()


def _queue_depths(settings) -> dict[str, int]:
    """Depth per queue label; empty when RabbitMQ cannot be reached. A queue not declared yet is empty."""
    try:
        connection = connect(settings.replace(network_timeout=min(settings.network_timeout, 2.0)), heartbeat=0)
    except BROKER_ERRORS:
        return {}
    depths = {}
    try:
        for label, queue in QUEUES.items():
            channel = connection.channel()
            try:
                depths[label] = channel.queue_declare(queue, passive=True).method.message_count
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                depths[label] = 0  # 404: nothing has declared it yet
    except BROKER_ERRORS:
        return {}
    finally:
        close_quietly(connection)
    return depths

