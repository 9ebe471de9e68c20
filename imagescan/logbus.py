"""Logging to the RabbitMQ `logs` topic exchange, as JSON, from a background thread.

A request must never wait for (or fail because of) the log broker, so records go through
a bounded in-memory queue to one publishing thread that owns its own connection. When the
broker is away the thread reconnects with back-off and drops what does not fit the queue.
The request thread only hands the record over: turning it into JSON (for the bus and for
stderr) and writing it happen on background threads, so logging costs a call almost nothing.
Those threads take whatever has gathered every HANDOVER_SECONDS and deal with it at once:
one write and flush to stderr, and for the bus every message handed to the connection, then
one flush of the socket. Per record, that was most of what a light request cost the process
beyond Flask (a publish through pika's blocking channel runs its I/O loop each time).
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import struct
import sys
import threading
import time

import pika
from pika import frame, spec

from . import backoff, topology
from .broker import BROKER_ERRORS, connect
from .config import Settings

_QUEUE_SIZE = 10_000
HANDOVER_SECONDS = 0.05  # the longest a record waits before a background thread takes it
_BATCH = 500  # records taken at once
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def record_to_json(record: logging.LogRecord, service: str, hostname: str) -> str:
    """The record as one JSON line; made once, then shared by the stderr and bus handlers."""
    cached = getattr(record, "_imagescan_json", None)
    if cached is not None and cached[0] == (service, hostname):
        return cached[1]
    text = _to_json(record, service, hostname)
    record._imagescan_json = ((service, hostname), text)
    return text


_encode = json.JSONEncoder(default=str).encode  # one encoder: json.dumps(default=) makes one per call
_second_text = (0, "1970-01-01T00:00:00")  # the last second formatted, and its text


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds (`2026-12-02T19:30:00.123+00:00`); the date and time
    of day are formatted once a second, since records of one second share them."""
    global _second_text
    second = int(created)
    micro = round((created - second) * 1e6)  # as datetime rounds a timestamp, then milliseconds
    if micro == 1_000_000:
        second, micro = second + 1, 0
    if _second_text[0] != second:
        _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_text[1]}.{micro // 1000:03d}+00:00"


def _to_json(record: logging.LogRecord, service: str, hostname: str) -> str:
    document = {
        "ts": _timestamp(record.created),
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
    return _encode(document)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, hostname: str):
        super().__init__()
        self.service, self.hostname = service, hostname

    def format(self, record: logging.LogRecord) -> str:
        return record_to_json(record, self.service, self.hostname)


class _Handover:
    """Records from any thread to one background thread. Putting one is an append to a deque:
    no lock, no wake-up of the taker, who looks every HANDOVER_SECONDS. At most _QUEUE_SIZE
    wait (losing a log line beats blocking a request).

    The taker also waits out the rest of HANDOVER_SECONDS after a take, unless a whole batch
    is waiting: under steady load records keep arriving, and a taker that came straight back
    found one or two each time, paying a write, a flush and a socket flush per record, and
    taking the interpreter's lock from the request threads as often (measured: /healthz cost
    0.62 ms of CPU at INFO against 0.40 ms with the log lines off)."""

    def __init__(self):
        self._records: collections.deque = collections.deque()
        self._last_take = 0.0

    def put(self, record) -> None:
        if len(self._records) < _QUEUE_SIZE:
            self._records.append(record)

    def take(self, stop: threading.Event | None = None) -> list:
        """What has gathered (up to _BATCH records), waiting for at least one unless stopped."""
        stopping = stop is not None and stop.is_set()
        rest = self._last_take + HANDOVER_SECONDS - time.monotonic()
        if rest > 0 and len(self._records) < _BATCH and not stopping:
            time.sleep(rest)
        while not self._records and not (stop is not None and stop.is_set()):
            time.sleep(HANDOVER_SECONDS)
        self._last_take = time.monotonic()
        taken = []
        while self._records and len(taken) < _BATCH:
            taken.append(self._records.popleft())
        return taken

    def __bool__(self) -> bool:
        return bool(self._records)


class _LockFreeHandler(logging.Handler):
    """A handler whose emit only appends to a deque (thread-safe on its own): the handler lock
    `logging.Handler.handle` takes around every emit is skipped, since request threads would
    otherwise queue for it on every log call."""

    def handle(self, record: logging.LogRecord) -> bool:
        if self.filter(record):
            self.emit(record)
            return True
        return False


class LogBusHandler(_LockFreeHandler):
    """Publishes each record on `<hostname>.<service>.<debug|info>` of the `logs` exchange."""

    def __init__(self, settings: Settings, service: str):
        super().__init__()
        self.settings, self.service = settings, service
        self._records = _Handover()
        self._reconnect = backoff.policy(BROKER_ERRORS, first=0.5, most=10)  # while the broker is away
        self._thread = threading.Thread(target=self._run, name="logbus", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        self._records.put(record)  # made into JSON on the publishing thread

    def _routed(self, record: logging.LogRecord) -> tuple[str, str]:
        level = "debug" if record.levelno < logging.INFO else "info"
        key = topology.log_routing_key(self.settings.hostname, self.service, level)
        return key, record_to_json(record, self.service, self.settings.hostname)

    def flush(self, timeout: float = 2.0) -> None:
        """Wait (a little) until queued records are published; used at shutdown."""
        deadline = time.monotonic() + timeout
        while self._records and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        pending: collections.deque = collections.deque()  # taken from the handover, not yet sent
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

    def _publish_forever(self, channel, pending: collections.deque) -> None:
        frames = _PublishFrames(channel, pika.BasicProperties(content_type="application/json"))
        while True:
            if not pending:
                pending.extend(self._routed(record) for record in self._records.take())
            frames.send(pending)
            channel.connection.process_data_events(time_limit=0)  # sends all that is queued


class _PublishFrames:
    """Publishes log messages on one channel, many per socket write, one message per record.

    pika's `basic_publish` builds the method, header and body frames through several objects
    per message, and its transport sends every frame with a send() of its own: with a log
    message per API call that was about 40 microseconds of the process's CPU a request. The
    frames are the same AMQP 0-9-1 frames: each routing key's Basic.Publish method frame is
    marshalled once, the header's properties once, and a batch goes to the connection as one
    buffer. A body larger than the connection's frame limit goes through pika as it is.
    The connection's frame output and frame limit are pika 1.x internals (pika is pinned in
    requirements.lock); tests/integration/test_logging.py fails if they change."""

    _BODY_PREFIX = struct.Struct(">BHI")
    _HEADER = struct.Struct(">BHIHxxQ")  # frame type, channel, size; class, weight (0), body size

    def __init__(self, channel, properties: pika.BasicProperties):
        self.channel = channel
        self.number = channel.channel_number
        self.properties = properties
        self._encoded_properties = b"".join(properties.encode())
        self._methods: dict[str, bytes] = {}

    def send(self, pending: collections.deque) -> None:
        """Hand every pending (routing key, text) to the connection. A message leaves `pending`
        only once handed over, so what a lost connection interrupts is sent after reconnecting."""
        if not self.channel.is_open:
            raise pika.exceptions.ChannelWrongStateError("the log channel is closed")
        connection = self.channel.connection._impl
        while pending:
            parts, handed = [], 0
            for key, text in pending:
                body = text.encode()
                if len(body) > connection._body_max_length:
                    break
                parts += (self._method(key), self._header(len(body)),
                          self._BODY_PREFIX.pack(spec.FRAME_BODY, self.number, len(body)), body, _FRAME_END)
                handed += 1
            if parts:
                connection._output_marshaled_frames([b"".join(parts)])
            for _ in range(handed):
                pending.popleft()
            if pending:  # the next is larger than a frame: pika splits it into several
                key, text = pending[0]
                self.channel._impl.basic_publish(topology.LOG_EXCHANGE, key, text.encode(), self.properties)
                pending.popleft()

    def _method(self, key: str) -> bytes:
        marshalled = self._methods.get(key)
        if marshalled is None:
            publish = spec.Basic.Publish(exchange=topology.LOG_EXCHANGE, routing_key=key)
            marshalled = self._methods[key] = frame.Method(self.number, publish).marshal()
        return marshalled

    def _header(self, body_size: int) -> bytes:
        return self._HEADER.pack(spec.FRAME_HEADER, self.number, 12 + len(self._encoded_properties),
                                 spec.BasicProperties.INDEX, body_size) + self._encoded_properties + _FRAME_END


_FRAME_END = bytes([spec.FRAME_END])


class _ToStderrThread(_LockFreeHandler):
    """Passes the record as it is to the stderr thread (formatting happens there)."""

    def __init__(self, records: _Handover):
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.put(record)


class _StderrWriter:
    """The thread writing the JSON lines of handed-over records to stderr, many per write."""

    def __init__(self, handler: logging.StreamHandler):
        self.handler, self.records, self._stop = handler, _Handover(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="stderr-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self.records.take(self._stop)
            if not batch and self._stop.is_set():
                return
            self._write(batch)

    def _write(self, batch: list) -> None:
        lines = []
        for record in batch:
            try:
                lines.append(self.handler.format(record))
            except Exception:  # noqa: BLE001  (as StreamHandler.emit: report, go on)
                self.handler.handleError(record)
        if lines:
            stream = self.handler.stream
            stream.write("\n".join(lines) + "\n")
            stream.flush()

    def stop(self) -> None:
        """Write what is still handed over, then end the thread."""
        self._stop.set()
        self._thread.join(5)


_stderr_writer: _StderrWriter | None = None


def _stderr_in_background(service: str, hostname: str) -> logging.Handler:
    global _stderr_writer
    if _stderr_writer is not None:
        _stderr_writer.stop()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(JsonFormatter(service, hostname))
    _stderr_writer = _StderrWriter(stderr)
    return _ToStderrThread(_stderr_writer.records)


def _write_directly_in_a_forked_child() -> None:
    """A forked child (a gunicorn worker) has no writer thread: it writes stderr lines
    itself until it configures logging again (gunicorn's post_worker_init does)."""
    global _stderr_writer
    if _stderr_writer is None:
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ToStderrThread)]:
        root.removeHandler(handler)
        root.addHandler(_stderr_writer.handler)
    _stderr_writer = None


os.register_at_fork(after_in_child=_write_directly_in_a_forked_child)


@atexit.register
def _flush_stderr() -> None:
    if _stderr_writer is not None:
        _stderr_writer.stop()  # writes what is still handed over


def _skip_unused_record_fields() -> None:
    """The JSON lines carry none of the caller's file and line, thread or process names: not
    looking them up for every record (the logging HOWTO's "Optimization" switches) saves
    a stack walk and several calls on each log call of a request thread."""
    logging._srcfile = None  # no findCaller() stack walk
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(settings: Settings, service: str, *, to_broker: bool = True) -> None:
    """JSON lines on stderr (for `kubectl logs` of this pod) and on the `logs` exchange."""
    _skip_unused_record_fields()
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(settings.log_level)
    root.addHandler(_stderr_in_background(service, settings.hostname))
    if to_broker:
        root.addHandler(LogBusHandler(settings, service))
    for noisy in ("pika", "urllib3", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
