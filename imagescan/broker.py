"""RabbitMQ connections: a publisher with confirms for the REST side, and connection settings.

pika's BlockingConnection is not thread-safe, so the Publisher serialises use of its one
connection with a lock and reconnects on the next call after any failure.
"""

from __future__ import annotations

import json
import random
import threading

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from . import topology
from .config import Settings

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


class Publisher:
    """Publishes persistent work messages and returns only once the broker confirmed them."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        # Heartbeats bound the wait for a confirm from a broker that stopped answering (a
        # paused VM, a stalled node): without them a publish would wait for ever.
        self._heartbeat = max(2, round(settings.network_timeout * 2))
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None

    def publish(self, kind: str, request_id: str = "", *, bulk: bool = False, **payload) -> None:
        """`bulk`: to the lane workers serve only when no interactive work waits."""
        routing_key = topology.work_routing_key(kind, bulk)
        body = encode_work(kind, request_id=request_id, **payload)
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            correlation_id=request_id or None,
        )
        # Bounded: during a broker stall the upload in flight holds the lock until its own time
        # limit, and every other upload would otherwise wait that long once per upload ahead.
        if not self._lock.acquire(timeout=self._settings.network_timeout):
            raise BrokerUnavailable("RabbitMQ is slow to confirm: another upload is still waiting")
        try:
            # One retry on a fresh connection: an idle connection may have been dropped by the
            # broker or a load balancer since the last call, which says nothing about now.
            for attempt in (1, 2):
                try:
                    channel = self._ensure_channel()
                    channel.basic_publish(
                        topology.WORK_EXCHANGE, routing_key, body, properties, mandatory=True
                    )
                    return
                except pika.exceptions.UnroutableError as exc:
                    raise BrokerUnavailable("the work queue is missing on the broker") from exc
                except pika.exceptions.NackError as exc:
                    self._close()
                    raise BrokerUnavailable("the broker refused the message") from exc
                except pika.exceptions.ConnectionBlockedTimeout as exc:
                    # A memory or disk alarm blocks every publisher: a retry would only wait again.
                    self._close()
                    raise BrokerUnavailable("RabbitMQ blocks publishing (memory or disk alarm)") from exc
                except BROKER_ERRORS as exc:
                    self._close()
                    if attempt == 2:
                        raise BrokerUnavailable(f"RabbitMQ is unreachable: {exc!r}") from exc
        finally:
            self._lock.release()

    def ping(self) -> bool | None:
        """True/False: the broker answers or not; None: busy (a publish is using the connection),
        which a health check must not wait behind. Bounded by a short connect timeout."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            self._ensure_channel(quick=True)
            self._connection.process_data_events(time_limit=0)
            return True
        except BROKER_ERRORS:
            self._close()
            return False
        finally:
            self._lock.release()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._close()

    def _keep_alive(self) -> None:
        """Service the connection between publishes (heartbeats both ways), so the broker
        does not drop it as dead while the service is merely idle."""
        while not self._closed.wait(self._heartbeat / 2):
            if not self._lock.acquire(blocking=False):
                continue  # a publish is servicing the connection right now
            try:
                if self._connection is not None and self._connection.is_open:
                    self._connection.process_data_events(time_limit=0)
            except BROKER_ERRORS:
                self._close()
            finally:
                self._lock.release()

    def _ensure_channel(self, quick: bool = False):
        if self._channel is None or not self._channel.is_open:
            self._close()
            nodes = every_node(self._settings, heartbeat=self._heartbeat)
            if quick:  # for a health check, which has a probe's few seconds in all
                for parameters in nodes:
                    parameters.socket_timeout = min(parameters.socket_timeout, 1.0)
                    parameters.stack_timeout = min(parameters.stack_timeout, 2.0)
            self._connection = pika.BlockingConnection(nodes)
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_alive, name="publisher-heartbeat",
                                                daemon=True)
                self._keeper.start()
            topology.declare_work(self._connection)
            channel = self._connection.channel()
            channel.confirm_delivery()
            self._channel = channel
        return self._channel

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except BROKER_ERRORS:
                pass


def close_quietly(connection) -> None:
    """Close a connection that may already be broken: an error then only says it is gone."""
    if connection is not None and connection.is_open:
        try:
            connection.close()
        except BROKER_ERRORS:
            pass
