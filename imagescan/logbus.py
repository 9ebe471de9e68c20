"""Logging to the RabbitMQ `logs` topic exchange, as JSON, from a background thread.

A request must never wait for (or fail because of) the log broker, so records go through
a bounded in-memory queue to one publishing thread that owns its own connection. When the
broker is away the thread reconnects with back-off and drops what does not fit the queue.
The request thread only hands the record over: turning it into JSON (for the bus and for
stderr) and writing it happen on background threads, so logging costs a call almost nothing.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from datetime import UTC, datetime

import pika

from . import backoff, topology
from .broker import BROKER_ERRORS, connect
from .config import Settings

_QUEUE_SIZE = 10_000
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def record_to_json(record: logging.LogRecord, service: str, hostname: str) -> str:
    """The record as one JSON line; made once, then shared by the stderr and bus handlers."""
    cached = getattr(record, "_imagescan_json", None)
    if cached is not None and cached[0] == (service, hostname):
        return cached[1]
    text = _to_json(record, service, hostname)
    record._imagescan_json = ((service, hostname), text)
    return text


def _to_json(record: logging.LogRecord, service: str, hostname: str) -> str:
    document = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "service": service,
        "host": hostname,
        "logger": record.name,
        "message": record.getMessage(),
    }
    # `extra=` fields (request_id, sha256, status, ...) become top-level keys.
    for name, value in vars(record).items():
        if name not in _STANDARD_ATTRS and not name.startswith("_"):
            document[name] = value
    if record.exc_info:
        document["exception"] = logging.Formatter().formatException(record.exc_info)
    return json.dumps(document, default=str)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, hostname: str):
        super().__init__()
        self.service, self.hostname = service, hostname

    def format(self, record: logging.LogRecord) -> str:
        return record_to_json(record, self.service, self.hostname)


class LogBusHandler(logging.Handler):
    """Publishes each record on `<hostname>.<service>.<debug|info>` of the `logs` exchange."""

    def __init__(self, settings: Settings, service: str):
        super().__init__()
        self.settings, self.service = settings, service
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE_SIZE)
        self._reconnect = backoff.policy(BROKER_ERRORS, first=0.5, most=10)  # while the broker is away
        self._thread = threading.Thread(target=self._run, name="logbus", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._queue.put_nowait(record)  # made into JSON on the publishing thread
        except queue.Full:
            pass  # losing a log line beats blocking a request

    def _routed(self, record: logging.LogRecord) -> tuple[str, str]:
        level = "debug" if record.levelno < logging.INFO else "info"
        key = topology.log_routing_key(self.settings.hostname, self.service, level)
        return key, record_to_json(record, self.service, self.settings.hostname)

    def flush(self, timeout: float = 2.0) -> None:
        """Wait (a little) until queued records are published; used at shutdown."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        pending = [None]  # a record taken from the queue but not yet published
        while True:
            channel = self._reconnect(self._open_channel)
            try:
                self._publish_forever(channel, pending)
            except BROKER_ERRORS:
                pass  # connect again, backing off from the first pause if the broker is away

    def _open_channel(self):
        channel = connect(self.settings, heartbeat=0).channel()
        topology.declare_logs(channel)
        return channel

    def _publish_forever(self, channel, pending: list) -> None:
        while True:
            if pending[0] is None:
                pending[0] = self._routed(self._queue.get())
            key, body = pending[0]
            channel.basic_publish(
                topology.LOG_EXCHANGE, key, body.encode(),
                pika.BasicProperties(content_type="application/json"),
            )
            pending[0] = None

class _HandOver(logging.handlers.QueueHandler):
    """Passes the record as it is to a background thread (formatting happens there); when
    the thread falls behind by a whole queue, records are dropped rather than waited for."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            pass


_stderr_listener: logging.handlers.QueueListener | None = None


def _stderr_in_background(service: str, hostname: str) -> logging.Handler:
    global _stderr_listener
    if _stderr_listener is not None:
        _stderr_listener.stop()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(JsonFormatter(service, hostname))
    records: queue.Queue = queue.Queue(maxsize=_QUEUE_SIZE)
    _stderr_listener = logging.handlers.QueueListener(records, stderr)
    _stderr_listener.start()
    return _HandOver(records)


def _write_directly_in_a_forked_child() -> None:
    """A forked child (a gunicorn worker) has no listener thread, and its copy of the queue
    may have been locked by that thread at the fork: it writes stderr lines itself until it
    configures logging again (gunicorn's post_worker_init does)."""
    global _stderr_listener
    if _stderr_listener is None:
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _HandOver)]:
        root.removeHandler(handler)
        root.addHandler(_stderr_listener.handlers[0])
    _stderr_listener = None


os.register_at_fork(after_in_child=_write_directly_in_a_forked_child)


@atexit.register
def _flush_stderr() -> None:
    if _stderr_listener is not None:
        _stderr_listener.stop()  # writes what is still queued


def configure_logging(settings: Settings, service: str, *, to_broker: bool = True) -> None:
    """JSON lines on stderr (for `kubectl logs` of this pod) and on the `logs` exchange."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(settings.log_level)
    root.addHandler(_stderr_in_background(service, settings.hostname))
    if to_broker:
        root.addHandler(LogBusHandler(settings, service))
    for noisy in ("pika", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
