"""`python -m logs`: bind `#` on the `logs` topic exchange and print each message to stderr.

Each line is `<routing key> <message>`, so `kubectl logs` of this pod shows the whole stack.
"""

from __future__ import annotations

import logging
import signal
import sys

from imagescan import backoff, config, metrics, topology
from imagescan.broker import BROKER_ERRORS, connect
from imagescan.config import Settings

from .metrics import count_message


def print_message(channel, method, properties, body: bytes) -> None:
    count_message(method.routing_key)
    print(method.routing_key, body.decode("utf-8", "replace"), file=sys.stderr, flush=True)


def listen(settings: Settings) -> None:
    connection = connect(settings)
    try:
        channel = connection.channel()
        topology.declare_logs(channel)
        # A private, auto-deleted queue: each logs pod sees every message while it runs.
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.queue_bind(queue, topology.LOG_EXCHANGE, routing_key="#")
        channel.basic_consume(queue, print_message, auto_ack=True)
        print(f"logs: listening on exchange {topology.LOG_EXCHANGE!r} with '#'", file=sys.stderr, flush=True)
        channel.start_consuming()
    finally:
        if connection.is_open:
            connection.close()


def _report_retry(state) -> None:
    print(f"logs: broker unavailable ({state.outcome.exception()!r}); retrying in {state.upcoming_sleep:.1f}s",
          file=sys.stderr, flush=True)


RETRYING = backoff.policy(BROKER_ERRORS, first=0.5, most=10, before_sleep=_report_retry)


def main() -> int:
    settings = config.load("logs")
    logging.basicConfig(level=logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if settings.metrics_port:  # one process: its own registry is the whole story
        metrics.serve(settings.metrics_port, metrics.scrape_registry(), "logs")
    while True:  # listen() only returns if the broker cancels the consumer: listen again
        RETRYING(listen, settings)


if __name__ == "__main__":
    sys.exit(main())
