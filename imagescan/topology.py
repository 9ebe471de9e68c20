"""The RabbitMQ topology. This is the only module that spells an exchange, queue or routing key.

    toWorker (direct, durable) --analyze/render--> imagescan.analyze (quorum, durable)
               --analyze.bulk-----> imagescan.analyze.bulk (same arguments): uploads that
                                    said they are bulk; a worker takes from it only while
                                    imagescan.analyze has nothing for it (the priority lane)
        ... a message the broker gives up on (a delivery limit set by policy, or RabbitMQ 4's
        default of 20) is dead-lettered; the worker's own MAX_ATTEMPTS count comes first:
    toWorker.dead-letter (fanout, durable) ------> imagescan.analyze.dead (quorum, durable)
    logs (topic, durable)  <hostname>.<service>.<debug|info>  ---> the logs service (exclusive, "#")

Messages on toWorker are small JSON documents; image bytes stay in the blob store.
"""

from __future__ import annotations

import logging

import pika.exceptions

log = logging.getLogger("imagescan.topology")
PRECONDITION_FAILED = 406

WORK_EXCHANGE = "toWorker"
WORK_QUEUE = "imagescan.analyze"
DEAD_LETTER_EXCHANGE = "toWorker.dead-letter"
BULK_QUEUE = "imagescan.analyze.bulk"
DEAD_LETTER_QUEUE = "imagescan.analyze.dead"
LOG_EXCHANGE = "logs"

# Kinds of work message; each is a routing key on toWorker bound to the work queue.
ANALYZE = "analyze"
RENDER = "render"
WORK_KINDS = (ANALYZE, RENDER)

LOG_LEVELS = ("debug", "info")
BULK_SUFFIX = ".bulk"


def work_routing_key(kind: str, bulk: bool = False) -> str:
    """`analyze` to the interactive lane, `analyze.bulk` to the bulk lane (analyses only)."""
    if bulk and kind == ANALYZE:
        return kind + BULK_SUFFIX
    return kind


def log_routing_key(hostname: str, service: str, level: str) -> str:
    """`<hostname>.<service>.<debug|info>`; a dot in the hostname would add topic words, so it is replaced."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {LOG_LEVELS}, got {level!r}")
    return f"{hostname.replace('.', '-')}.{service}.{level}"


# Fixed when RabbitMQ first creates a queue: a declaration with other arguments is refused,
# so nothing a setting may change goes here (attempts are counted by the worker, in Redis;
# limits an operator wants on the broker belong in a policy).
WORK_QUEUE_ARGUMENTS = {"x-queue-type": "quorum", "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
# Quorum as well: a classic queue lives on one node, and once that node is down every
# declaration (each new publisher channel) fails, stopping uploads on the whole cluster.
DEAD_LETTER_QUEUE_ARGUMENTS = {"x-queue-type": "quorum"}


def declare_work(connection) -> None:
    """Declare the work exchange, both work queues and the dead-letter path. Idempotent.

    A queue that already exists with other arguments (made by an earlier release, or by hand)
    is used as it is, with a warning, rather than refusing to start."""
    channel = connection.channel()
    try:
        channel.exchange_declare(WORK_EXCHANGE, exchange_type="direct", durable=True)
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
        channel = _declare_queue(connection, channel, DEAD_LETTER_QUEUE, DEAD_LETTER_QUEUE_ARGUMENTS)
        channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)
        for queue in (WORK_QUEUE, BULK_QUEUE):
            channel = _declare_queue(connection, channel, queue, WORK_QUEUE_ARGUMENTS)
        for kind in WORK_KINDS:
            channel.queue_bind(WORK_QUEUE, WORK_EXCHANGE, routing_key=kind)
        channel.queue_bind(BULK_QUEUE, WORK_EXCHANGE, routing_key=work_routing_key(ANALYZE, bulk=True))
    finally:
        if channel.is_open:
            channel.close()


def _declare_queue(connection, channel, queue: str, arguments: dict):
    """Declare one durable queue; returns the channel to go on with (a refusal closes the old one)."""
    try:
        channel.queue_declare(queue, durable=True, arguments=arguments)
        return channel
    except pika.exceptions.ChannelClosedByBroker as refused:
        if refused.reply_code != PRECONDITION_FAILED:
            raise
        log.warning("queue %s exists with other arguments (%s); using it as it is", queue, refused.reply_text)
        channel = connection.channel()
        channel.queue_declare(queue, passive=True)
        return channel


def declare_logs(channel) -> None:
    channel.exchange_declare(LOG_EXCHANGE, exchange_type="topic", durable=True)
