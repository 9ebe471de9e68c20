"""Several confirmed publishers side by side, for a process that publishes from many threads.

A Publisher waits for the broker's confirm of each message with its connection held, and a
confirm from a quorum queue is a round trip plus a disk write on the broker. With one
connection per process, concurrent uploads queue for it (the profile of the ingest path
showed request threads spending more time waiting for that lock than doing anything else).
A pool lets as many uploads wait for their confirms at once as it has connections, and the
broker then groups their disk writes. Every message is still confirmed before `publish`
returns, so a 2xx still means the work is queued.
"""

from __future__ import annotations

import queue

from .broker import BrokerUnavailable, Publisher
from .config import Settings


class PublisherPool:
    """`publish`, `ping` and `close` of a Publisher, over `size` connections opened on demand."""

    def __init__(self, settings: Settings, size: int):
        self._all = [Publisher(settings) for _ in range(max(1, size))]
        # As for one publisher's lock: an upload waits a bounded time for a free connection
        # (during a broker stall every one may be held), then gets its 503.
        self._wait = settings.network_timeout
        # Last in, first out: under light load the same one or two connections do all the
        # work (the others are never opened); under load every one is in use.
        self._idle: queue.LifoQueue[Publisher] = queue.LifoQueue()
        for publisher in reversed(self._all):
            self._idle.put(publisher)

    def publish(self, kind: str, request_id: str = "", **options) -> None:
        try:
            publisher = self._idle.get(timeout=self._wait)
        except queue.Empty:
            raise BrokerUnavailable(f"every broker connection stayed busy for {self._wait:.0f}s") from None
        try:
            publisher.publish(kind, request_id, **options)
        finally:
            self._idle.put(publisher)

    @property
    def first(self) -> Publisher:
        """The publisher that serves uploads one at a time (last in, first out)."""
        return self._all[0]

    def ping(self) -> bool:
        return self._all[0].ping()

    def close(self) -> None:
        for publisher in self._all:
            publisher.close()
