"""The RabbitMQ topology. This is the only module that spells an exchange, queue or routing key.

    toWorker (direct, durable) --analyze/render--> imagescan.analyze (quorum, durable,
                                                   delivery-limit = MAX_ATTEMPTS)
               --analyze.bulk-----> imagescan.analyze.bulk (same arguments): uploads that
                                    said they are bulk; a worker takes from it only while
                                    imagescan.analyze has nothing for it (the priority lane)
        ... after MAX_ATTEMPTS failed deliveries the broker dead-letters the message:
    toWorker.dead-letter (fanout, durable) ------> imagescan.analyze.dead (durable)
    logs (topic, durable)  <hostname>.<service>.<debug|info>  ---> the logs service (exclusive, "#")

Messages on toWorker are small JSON documents; image bytes stay in the blob store.
"""

from __future__ import annotations

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


def declare_work(channel, max_attempts: int) -> None:
    """Declare the work exchange, queue and dead-letter path. Idempotent."""
    channel.exchange_declare(WORK_EXCHANGE, exchange_type="direct", durable=True)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
    for queue in (WORK_QUEUE, BULK_QUEUE):
        _declare_work_queue(channel, queue, max_attempts)
    for kind in WORK_KINDS:
        channel.queue_bind(WORK_QUEUE, WORK_EXCHANGE, routing_key=kind)
    channel.queue_bind(BULK_QUEUE, WORK_EXCHANGE, routing_key=work_routing_key(ANALYZE, bulk=True))
    channel.queue_declare(DEAD_LETTER_QUEUE, durable=True)
    channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)


def _declare_work_queue(channel, queue: str, max_attempts: int) -> None:
    channel.queue_declare(
        queue,
        durable=True,
        arguments={
            # A quorum queue counts deliveries itself, so a message that crashes a worker
            # process (not just one that raises) is still dead-lettered after max_attempts.
            "x-queue-type": "quorum",
            "x-delivery-limit": max_attempts - 1,  # redeliveries after the first delivery
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        },
    )


def declare_logs(channel) -> None:
    channel.exchange_declare(LOG_EXCHANGE, exchange_type="topic", durable=True)
