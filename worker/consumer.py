"""The RabbitMQ side of a worker process: prefetch 1, manual ack after the Redis write.

Two lanes: the work queue is consumed (pushed by the broker); the bulk queue is polled
with basic.get only while no work is in hand or waiting, so an interactive upload queued
behind a bulk backlog waits for at most the one bulk analysis already running.

The analysis runs in a separate thread while this thread keeps servicing the connection
(heartbeats), so a long analysis never gets the connection dropped under it. Acks and
nacks are handed back to the connection's thread with add_callback_threadsafe, as pika
requires.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from pathlib import Path

from imagescan import backoff, topology
from imagescan.broker import BROKER_ERRORS, connect, decode_work

from . import handler
from .services import WorkerServices

log = logging.getLogger("imagescan.worker.consumer")
HEARTBEAT_SECONDS = 30
HEALTH_TOUCH_SECONDS = 5
BULK_POLL_SECONDS = 0.25  # idle wait between two looks at an empty bulk queue


class Consumer:
    def __init__(self, services: WorkerServices):
        self.services = services
        self.settings = services.settings
        self._stop = threading.Event()
        self._busy: threading.Thread | None = None
        self._waiting: list[tuple] = []  # a delivery that came while a bulk analysis ran
        self.processed = 0

    # -- lifecycle -------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def stop(self) -> None:
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def recycle_due(self) -> bool:
        """Bounded memory: leave (to be restarted fresh) after N images or above an RSS mark."""
        if self.settings.worker_max_images and self.processed >= self.settings.worker_max_images:
            return True
        # Only after one image at least: a mark below what a fresh process already uses
        # (models loaded) would otherwise make every process leave before taking any work.
        return (bool(self.settings.worker_max_rss_mb) and self.processed > 0
                and _rss_mb() > self.settings.worker_max_rss_mb)

    def run(self) -> None:
        retrying = backoff.policy(BROKER_ERRORS, first=0.5, most=10, stop=self.should_stop,
                                  sleep=self._stop.wait, after=self._connection_lost,
                                  retry_error_callback=lambda _state: None)
        retrying(self._consume_until_done)
        self._health_down()

    def _consume_until_done(self) -> None:
        while not self.should_stop() and not self.recycle_due():
            self._consume()

    def _connection_lost(self, state) -> None:
        self._health_down()
        log.warning("broker connection lost (%r); reconnecting in %.1fs, once the analysis "
                    "in hand (if any) has ended", state.outcome.exception(),
                    backoff.pause(state.attempt_number, first=0.5, most=10))
        # One analysis per process, always: an analysis still running from the lost
        # connection finishes (and stores its result) before new work is taken.
        self._wait_for_analysis()

    def _wait_for_analysis(self) -> None:
        busy = self._busy
        if busy is not None:
            busy.join()

    # -- consuming -------------------------------------------------------------

    def _consume(self) -> None:
        connection = connect(self.settings, heartbeat=HEARTBEAT_SECONDS)
        try:
            topology.declare_work(connection)
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1)
            tags = [
                channel.basic_consume(topology.WORK_QUEUE, functools.partial(self._on_work, connection)),
                channel.basic_consume(topology.DEAD_LETTER_QUEUE, self._on_dead),
            ]
            log.info("worker consuming %s", topology.WORK_QUEUE)
            last_touch, bulk_empty = 0.0, False
            while not self.should_stop() and not (self._busy is None and self.recycle_due()):
                connection.process_data_events(time_limit=BULK_POLL_SECONDS if bulk_empty else 0)
                if self._busy is None and self._waiting and not self.recycle_due():
                    self._start(*self._waiting.pop(0))
                elif self._busy is None and self._interactive_ready(channel):
                    # The broker is about to push it (our prefetch has room): wait for it.
                    connection.process_data_events(time_limit=BULK_POLL_SECONDS)
                elif self._busy is None:
                    bulk_empty = not self._take_bulk(connection, channel)
                else:
                    connection.process_data_events(time_limit=BULK_POLL_SECONDS)
                if time.monotonic() - last_touch >= HEALTH_TOUCH_SECONDS:
                    self._health_up()
                    last_touch = time.monotonic()
            # Graceful stop: take no new message, finish the one in hand (its ack goes out).
            for tag in tags:
                channel.basic_cancel(tag)
            while self._busy is not None and self._busy.is_alive():
                connection.process_data_events(time_limit=0.5)
            connection.process_data_events(time_limit=0)
        finally:
            # Deliveries waiting from this connection die with it: the broker hands them out again.
            self._waiting.clear()
            if connection.is_open:
                try:
                    connection.close()
                except BROKER_ERRORS:
                    pass

    @staticmethod
    def _interactive_ready(channel) -> bool:
        return channel.queue_declare(topology.WORK_QUEUE, passive=True).method.message_count > 0

    def _take_bulk(self, connection, channel) -> bool:
        """Start one message from the bulk lane; False when that lane is empty."""
        method, properties, body = channel.basic_get(topology.BULK_QUEUE, auto_ack=False)
        if method is None:
            return False
        self._start(connection, channel, method, properties, body)
        return True

    def _on_work(self, connection, channel, method, properties, body) -> None:
        # Kept for later while a bulk message (not counted by the prefetch) or the previous
        # analysis (its ack just sent) is in hand, and not started by a process about to be
        # recycled: left unacknowledged, the broker hands it to another worker.
        if self._busy is not None or self.recycle_due():
            self._waiting.append((connection, channel, method, properties, body))
            return
        self._start(connection, channel, method, properties, body)

    def _start(self, connection, channel, method, properties, body) -> None:
        def settle(action):
            try:
                connection.add_callback_threadsafe(action)
            except BROKER_ERRORS:
                # The connection went away during the analysis: the broker delivers the
                # message again, and the handler finds the image done. Not an analysis crash.
                log.warning("connection lost before the message was settled; it will come again",
                            extra={"delivery_tag": method.delivery_tag})

        def work():
            try:
                message = decode_work(body)
            except ValueError:
                log.warning("dropping a message that is not a work message: %r", body[:200])
                settle(lambda: channel.basic_ack(method.delivery_tag))
                return
            try:
                handler.handle(self.services, message, self.should_stop)
                settle(lambda: channel.basic_ack(method.delivery_tag))
                self.processed += 1
            except handler.Stopping:
                settle(lambda: channel.basic_nack(method.delivery_tag, requeue=True))
            except Exception:
                # The handler counted this attempt before it started. basic.reject, not nack:
                # RabbitMQ 4.3+ counts a reject towards a delivery limit but not a nack.
                log.exception("analysis crashed", extra={"sha256": message.get("sha256"),
                                                          "request_id": message.get("request_id")})
                settle(lambda: channel.basic_reject(method.delivery_tag, requeue=True))
            finally:
                if self._busy is threading.current_thread():
                    self._busy = None

        self._busy = threading.Thread(target=work, name="analysis", daemon=True)
        self._busy.start()

    def _on_dead(self, channel, method, properties, body, retry_in: float = 0.5) -> None:
        """Dead letters only need a quick Redis write, done right here on the connection thread.
        While Redis is away the message is kept unacknowledged (no other dead letter comes:
        prefetch 1) and tried again after a growing pause, instead of a nack that brings it
        straight back in a tight loop."""
        try:
            handler.handle_dead(self.services, decode_work(body))
        except ValueError:
            pass  # not ours: nothing to record
        except Exception as exc:  # noqa: BLE001 - whatever it was, the dead letter is kept
            log.warning("could not record a dead-lettered message (%r); trying again in %.1fs",
                        exc, retry_in)
            channel.connection.call_later(retry_in, functools.partial(
                self._on_dead, channel, method, properties, body, retry_in=min(retry_in * 2, 10)))
            return
        channel.basic_ack(method.delivery_tag)

    # -- health file for the liveness probe -----------------------------------

    def _health_up(self) -> None:
        try:
            Path(self.settings.worker_health_file).touch()
        except OSError:
            pass

    def _health_down(self) -> None:
        try:
            os.unlink(self.settings.worker_health_file)
        except OSError:
            pass


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0
