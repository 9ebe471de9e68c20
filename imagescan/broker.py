"""RabbitMQ connections: a publisher with confirms for the REST side, and connection settings.

pika's BlockingConnection is not thread-safe, so the Publisher's connection belongs to a
thread of its own, which sends what the other threads hand it and tells each when the
broker confirmed its message.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from . import topology
from .config import Settings

log = logging.getLogger("imagescan.broker")

# Errors that mean "the broker is not there (right now)", as opposed to a programming error.
BROKER_ERRORS = (
    pika.exceptions.AMQPError,
    # pika raises e.g. AMQPConnectorStackTimeout (a TCP connection accepted, then no AMQP
    # handshake: a stalled broker) as is, outside its AMQPError hierarchy.
    AMQPConnectorException,
    OSError,
)


class BrokerUnavailable(RuntimeError):
    """The message could not be handed to RabbitMQ (down, unreachable, or it refused)."""


def connection_parameters(settings: Settings, *, heartbeat: int = 30,
                          address: tuple[str, int] | None = None) -> pika.ConnectionParameters:
    host, port = address or (settings.rabbitmq_host, settings.rabbitmq_port)
    return pika.ConnectionParameters(
        host=host,
        port=port,
        virtual_host=settings.rabbitmq_vhost,
        credentials=pika.PlainCredentials(settings.rabbitmq_user, settings.rabbitmq_password),
        heartbeat=heartbeat,
        socket_timeout=settings.network_timeout,
        stack_timeout=settings.network_timeout * 2,
        blocked_connection_timeout=settings.network_timeout * 6,
        connection_attempts=1,
        # Sent data the broker does not acknowledge within this time breaks the connection:
        # without it, a publish waiting for its confirm across a silent network cut (no reset)
        # hangs for as long as the kernel retransmits, about 15 minutes.
        tcp_options={"TCP_USER_TIMEOUT": int(settings.network_timeout * 2 * 1000)},
        client_properties={"connection_name": f"imagescan@{settings.hostname}"},
    )


def connect(settings: Settings, *, heartbeat: int = 30) -> pika.BlockingConnection:
    """A connection to the first node of RABBITMQ_HOSTS that answers, starting at a random
    one so that the services spread over the cluster; a lost node is skipped."""
    return pika.BlockingConnection(every_node(settings, heartbeat=heartbeat))


def every_node(settings: Settings, *, heartbeat: int = 30) -> list[pika.ConnectionParameters]:
    """Parameters for each node of RABBITMQ_HOSTS (or RABBITMQ_HOST), from a random one on."""
    addresses = list(settings.rabbitmq_addresses)
    start = random.randrange(len(addresses))
    ordered = addresses[start:] + addresses[:start]
    return [connection_parameters(settings, heartbeat=heartbeat, address=address) for address in ordered]


def encode_work(kind: str, **payload) -> bytes:
    if kind not in topology.WORK_KINDS:
        raise ValueError(f"unknown work kind {kind!r}")
    return json.dumps({"kind": kind, **payload}, separators=(",", ":")).encode()


def decode_work(body: bytes) -> dict:
    """The work message, or ValueError when it is not one of ours."""
    message = json.loads(body)
    if not isinstance(message, dict) or message.get("kind") not in topology.WORK_KINDS:
        raise ValueError("not a work message")
    return message


class _Message:
    """A work message handed to the publisher's thread, and how it ended (`settled`, `error`)."""

    __slots__ = ("abandoned", "attempts", "body", "correlation_id", "error", "routing_key", "settled")

    def __init__(self, routing_key: str | None, body: bytes = b"", correlation_id: str | None = None):
        self.routing_key = routing_key  # None: only asks for a connection (a health check)
        self.body = body
        self.correlation_id = correlation_id
        self.settled = threading.Event()
        self.error: str | None = None  # set before settling: why the message is not queued
        self.attempts = 0
        self.abandoned = False  # the caller stopped waiting: not worth sending any more

    def settle(self, error: str | None = None) -> None:
        self.error = self.error or error
        self.settled.set()


# Publisher confirms take milliseconds; a broker silent for this long is stalled, or blocked.
CONFIRM_WAIT_FACTOR = 2
PING_SECONDS = 2.0  # a readiness probe gives up after 3 s
ALARM = "RabbitMQ blocks publishing (memory or disk alarm)"


class Publisher:
    """Publishes persistent work messages and returns only once the broker confirmed them.

    Any number of threads publish at once over one connection, which belongs to a thread of
    the publisher's own: it sends what the other threads hand it as it comes, several messages
    a socket write, and the broker's confirms (one frame may confirm many messages) wake the
    threads that wait for them. With a connection held by each publish until its confirm,
    uploads waited for free connections, and pika's work to publish and wait one message at a
    time was about a tenth of an upload's CPU.

    A message whose connection is lost before its confirm is sent once more on a new one (it
    may then be queued twice, which the worker tolerates: it skips an image already done);
    a message the broker refuses, returns as unroutable, or does not confirm within
    2 x NETWORK_TIMEOUT raises BrokerUnavailable, and so does every publish while the broker
    reports a memory or disk alarm."""

    def __init__(self, settings: Settings):
        self._settings = settings
        # Heartbeats bound the wait for a confirm from a broker that stopped answering (a
        # paused VM, a stalled node) and keep an idle connection from being dropped as dead.
        self._heartbeat = max(2, round(settings.network_timeout * 2))
        self._confirm_wait = settings.network_timeout * CONFIRM_WAIT_FACTOR
        self._guard = threading.Lock()  # starting the thread
        self._closed = False
        self._thread: threading.Thread | None = None
        self._reset()

    def _reset(self) -> None:
        """The state of the connection's thread (again in a forked copy of the process)."""
        self._waiting: collections.deque[_Message] = collections.deque()  # handed over, not sent
        self._unconfirmed: dict[int, _Message] = {}  # sent on the current channel, by delivery tag
        self._connection: pika.BlockingConnection | None = None
        self._channel = None  # pika's channel under the BlockingChannel: confirms come as callbacks
        self._next_tag = 1
        self._blocked = False
        self._refused = False  # the broker nacked a message on this channel
        self._wake_pending = False
        self._wakeup = threading.Event()  # wakes the thread while it has no connection

    def publish(self, kind: str, request_id: str = "", *, bulk: bool = False, **payload) -> None:
        """`bulk`: to the lane workers serve only when no interactive work waits."""
        message = _Message(topology.work_routing_key(kind, bulk),
                           encode_work(kind, request_id=request_id, **payload), request_id or None)
        self._hand_over(message)
        if not message.settled.wait(self._confirm_wait):
            message.abandoned = True
            raise BrokerUnavailable("RabbitMQ is slow to confirm")
        if message.error is not None:
            raise BrokerUnavailable(message.error)

    def ping(self) -> bool | None:
        """True/False: the broker answers or not; None: busy (messages wait for their
        confirms, or a connection is still being opened), which a health check must not
        wait behind."""
        connection = self._connection
        if connection is not None and connection.is_open:
            return None if self._unconfirmed or self._waiting else True
        probe = _Message(None)
        try:
            self._hand_over(probe)
        except BrokerUnavailable:
            return False
        if not probe.settled.wait(PING_SECONDS):
            probe.abandoned = True
            return None
        return probe.error is None

    def close(self) -> None:
        self._closed = True
        self._wake(force=True)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._confirm_wait + self._settings.network_timeout * 2)

    # -- the other threads' side --

    def _hand_over(self, message: _Message) -> None:
        if self._closed:
            raise BrokerUnavailable("the publisher is closed")
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start()
        self._waiting.append(message)
        self._wake()

    def _start(self) -> None:
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._thread is not None:  # a forked copy: the parent's connection is not ours
                self._reset()
            self._thread = threading.Thread(target=self._run, name="work-publisher", daemon=True)
            self._thread.start()

    def _wake(self, force: bool = False) -> None:
        """Interrupt the thread's wait, unless a wake-up it has not yet seen is on its way.
        The thread clears the flag before it takes what waits, so nothing handed over after
        that is left behind."""
        if self._wake_pending and not force:
            return
        self._wake_pending = True
        connection = self._connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(_nothing)  # ends process_data_events' wait
            except BROKER_ERRORS:
                pass  # closed meanwhile: the thread is on its way to the event below
        self._wakeup.set()

    # -- the connection's thread --

    def _run(self) -> None:
        while not self._closed:
            if self._connection is None and not self._work_arrived():
                continue
            try:
                if self._connection is None:
                    self._connect()
                self._wake_pending = False
                self._send_waiting()
                self._connection.process_data_events(time_limit=self._heartbeat / 2)
                self._check_channel()
            except BROKER_ERRORS as exc:
                self._lost(exc)
            except Exception:  # a bug must not leave uploads waiting on a dead thread
                log.exception("the work publisher failed; it starts over on a new connection")
                self._lost(None, "the work publisher failed")
        self._lost(None)

    def _work_arrived(self) -> bool:
        """Without a connection: wait for something to send (a heartbeat's time at most)."""
        self._wake_pending = False
        self._wakeup.clear()
        if not self._waiting:
            self._wakeup.wait(self._heartbeat / 2)
        return bool(self._waiting) and not self._closed

    def _connect(self) -> None:
        try:
            connection = pika.BlockingConnection(every_node(self._settings, heartbeat=self._heartbeat))
        except BROKER_ERRORS as exc:
            self._fail_waiting(f"RabbitMQ is unreachable: {exc!r}")
            raise
        try:
            topology.declare_work(connection)
            # pika's channel under the BlockingChannel (a pika 1.x internal; pika is pinned in
            # requirements.lock): the blocking one waits for each confirm before the next send.
            channel = connection.channel()._impl
            channel.add_on_return_callback(self._on_return)
            selected: list = []
            channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=selected.append)
            deadline = time.monotonic() + self._settings.network_timeout
            while not selected and time.monotonic() < deadline:
                connection.process_data_events(time_limit=0.05)
            if not selected:
                raise pika.exceptions.AMQPChannelError("the broker did not turn publisher confirms on")
            connection.add_on_connection_blocked_callback(self._on_blocked)
            connection.add_on_connection_unblocked_callback(self._on_unblocked)
        except BROKER_ERRORS as exc:
            close_quietly(connection)
            self._fail_waiting(f"RabbitMQ is unreachable: {exc!r}")
            raise
        self._channel, self._next_tag, self._blocked, self._refused = channel, 1, False, False
        self._connection = connection

    def _send_waiting(self) -> None:
        while self._waiting:
            message = self._waiting.popleft()
            if message.abandoned:
                continue
            if message.routing_key is None or self._blocked:  # a probe, or nothing gets through
                message.settle(ALARM if self._blocked else None)
                continue
            tag, self._next_tag = self._next_tag, self._next_tag + 1
            self._unconfirmed[tag] = message  # first: should the send fail, it is sent again
            message.attempts += 1
            message.error = None  # a return on an earlier connection says nothing of this one
            # The message id matches a returned message (which carries no delivery tag) to its own.
            properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                              content_type="application/json",
                                              correlation_id=message.correlation_id, message_id=str(tag))
            self._channel.basic_publish(topology.WORK_EXCHANGE, message.routing_key, message.body,
                                        properties, mandatory=True)

    def _check_channel(self) -> None:
        """A channel is replaced once it closed or refused a message: after a quorum queue's
        leader node was lost, a channel that nacked one message nacked every later one while
        its connection stayed healthy (tests/faults/test_clusters.py)."""
        if not self._channel.is_open:
            raise pika.exceptions.ChannelClosed(0, "the publishing channel was closed")
        if self._refused:
            raise pika.exceptions.AMQPChannelError("the broker refused a message on this channel")

    def _on_confirm(self, frame) -> None:
        """Basic.Ack or Basic.Nack for one message, or for every one up to its tag."""
        method = frame.method
        error = None if isinstance(method, pika.spec.Basic.Ack) else "the broker refused the message"
        self._refused = self._refused or error is not None
        if method.multiple:
            tags = [tag for tag in self._unconfirmed if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            message = self._unconfirmed.pop(tag, None)
            if message is not None:
                message.settle(error)

    def _on_return(self, _channel, _method, properties, _body) -> None:
        """A mandatory message no queue took; its confirm follows, and settles it failed."""
        message = self._unconfirmed.get(int(properties.message_id or 0))
        if message is not None:
            message.error = "the work queue is missing on the broker"

    def _on_blocked(self, _connection, _frame) -> None:
        # A memory or disk alarm: what waits would wait for as long as the alarm lasts.
        self._blocked = True
        self._fail(self._unconfirmed.values(), ALARM)
        self._unconfirmed.clear()

    def _on_unblocked(self, _connection, _frame) -> None:
        self._blocked = False

    def _lost(self, exc: BaseException | None, reason: str = "the publisher is closed") -> None:
        """The connection failed: what it had sent without a confirm goes out once more on
        the next connection, or fails. `exc` None: everything waiting fails with `reason`."""
        close_quietly(self._connection)
        self._connection = self._channel = None
        unsent = list(self._unconfirmed.values())  # in the order they were sent
        self._unconfirmed.clear()
        if exc is None:
            self._fail(unsent, reason)
            self._fail_waiting(reason)
        elif isinstance(exc, pika.exceptions.ConnectionBlockedTimeout):
            self._fail(unsent, ALARM)
        else:
            self._fail([message for message in unsent if message.attempts >= 2],
                       f"RabbitMQ is unreachable: {exc!r}")
            self._waiting.extendleft(reversed([message for message in unsent if message.attempts < 2]))

    @staticmethod
    def _fail(messages, reason: str) -> None:
        for message in messages:
            message.settle(reason)

    def _fail_waiting(self, reason: str) -> None:
        """Fail what was handed over and not sent, up to the last message: one handed over
        while this runs is taken too (a copy, then clear(), would drop it unsettled)."""
        while self._waiting:
            self._waiting.popleft().settle(reason)


def _nothing() -> None:
    """A callback that only ends the connection thread's wait."""


def close_quietly(connection) -> None:
    """Close a connection that may already be broken: an error then only says it is gone."""
    if connection is not None and connection.is_open:
        try:
            connection.close()
        except BROKER_ERRORS:
            pass
