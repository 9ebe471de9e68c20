"""The RabbitMQ topology. This is the only module that spells an exchange, queue or routing key.

    toWorker (direct, durable) --analyze/render--> imagescan.analyze (quorum, durable,
                                                   delivery-limit = MAX_ATTEMPTS)
        ... after MAX_ATTEMPTS failed deliveries the broker dead-letters the message:
    toWorker.dead-letter (fanout, durable) ------> imagescan.analyze.dead (quorum, durable)
    logs (topic, durable)  <hostname>.<service>.<debug|info>  ---> the logs service (exclusive, "#")

Messages on toWorker are small JSON documents; image bytes stay in the blob store.
"""

from __future__ import annotations

WORK_EXCHANGE = "toWorker"
WORK_QUEUE = "imagescan.analyze"
DEAD_LETTER_EXCHANGE = "toWorker.dead-letter"
DEAD_LETTER_QUEUE = "imagescan.analyze.dead"
LOG_EXCHANGE = "logs"

# Kinds of work message; each is a routing key on toWorker bound to the work queue.
ANALYZE = "analyze"
RENDER = "render"
WORK_KINDS = (ANALYZE, RENDER)

LOG_LEVELS = ("debug", "info")


def log_routing_key(hostname: str, service: str, level: str) -> str:
    """`<hostname>.<service>.<debug|info>`; a dot in the hostname would add topic words, so it is replaced."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {LOG_LEVELS}, got {level!r}")
    return f"{hostname.replace('.', '-')}.{service}.{level}"


def declare_work(channel, max_attempts: int) -> None:
    """Declare the work exchange, queue and dead-letter path. Idempotent."""
    channel.exchange_declare(WORK_EXCHANGE, exchange_type="direct", durable=True)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(
        WORK_QUEUE,
        durable=True,
        arguments={
            # A quorum queue counts deliveries itself, so a message that crashes a worker
            # process (not just one that raises) is still dead-lettered after max_attempts.
            "x-queue-type": "quorum",
            "x-delivery-limit": max_attempts - 1,  # redeliveries after the first delivery
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        },
    )
    for kind in WORK_KINDS:
        channel.queue_bind(WORK_QUEUE, WORK_EXCHANGE, routing_key=kind)
    # Quorum as well: a classic queue lives on one node, and once that node is down every
    # declaration (each new publisher channel) fails, stopping uploads on the whole cluster.
    channel.queue_declare(DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(DEAD_LETTER_QUEUE, DEAD_LETTER_EXCHANGE)


def declare_logs(channel) -> None:
    channel.exchange_declare(LOG_EXCHANGE, exchange_type="topic", durable=True)
