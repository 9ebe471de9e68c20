"""RabbitMQ and Redis restarted under load: every accepted upload is processed, nothing twice.

While a server is away the REST answers 503 with Retry-After (never a 2xx for an upload it
could not store or queue), and both the REST and the workers reconnect by themselves.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time

import pika
import pytest

from imagescan import keys
from imagescan.logbus import LogBusHandler
from tests.faults.conftest import assert_none_lost, upload
from tests.faults.servers import wait_until
from tests.faults.test_worker_faults import assert_indexed_once
from tests.imagefactory import jpeg
from tests.integration.test_logging import every_log_message

pytestmark = pytest.mark.faults


class Uploader:
    """Uploads fresh images one after another and sorts the answers."""

    def __init__(self, client):
        self.client = client
        self.seeds = iter(range(1000, 100000))
        self.accepted: list[str] = []
        self.refused: list[bytes] = []

    def one(self) -> int:
        data = jpeg(seed=next(self.seeds))
        response = self.client.post("/scan/image/burst.jpg", data=data)
        if response.status_code == 200:
            self.accepted.append(response.get_json()["hash"])
        else:
            assert response.status_code == 503, (response.status_code, response.get_json())
            assert int(response.headers["Retry-After"]) > 0
            assert response.get_json()["error"]
            self.refused.append(data)
        return response.status_code

    def burst(self, count: int) -> list[int]:
        return [self.one() for _ in range(count)]

    def while_running(self, thread: threading.Thread) -> list[int]:
        statuses = []
        while thread.is_alive():
            statuses.append(self.one())
            time.sleep(0.5)  # a steady trickle, not hundreds of refused uploads to resend
        return statuses

    def retry_refused(self) -> None:
        """What a client does after a 503: send the same image again."""
        for data in self.refused:
            self.accepted.append(upload(self.client, data, "retried.jpg"))


def in_background(action) -> threading.Thread:
    thread = threading.Thread(target=action)
    thread.start()
    return thread


def test_rabbitmq_restart_during_a_burst_of_uploads(stack, record_property):
    stack = stack(own_rabbit=True)
    # A slow worker, so that most of the first burst still waits in the queue when the broker stops.
    worker = stack.start_worker(FAULT_DELAY_SECONDS=0.15)
    uploads = Uploader(stack.client)
    assert uploads.burst(10) == [200] * 10
    # Stop the broker while the worker is busy: one image in hand, the rest still queued.
    wait_until(lambda: analysed(stack) >= 2, 30, "the worker to be working through the burst")

    uploads.while_running(in_background(stack.rabbit.stop))
    while_down = uploads.burst(5)
    assert while_down == [503] * 5, "an upload was answered while the broker was down"
    # The pod stays ready (reads need only Redis); readiness says the broker is away.
    ready = stack.client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["rabbitmq"] == "down"

    restarting = in_background(stack.rabbit.start)
    uploads.while_running(restarting)
    # The REST reconnects by itself: no restart of the app, only the next upload.
    wait_until(lambda: uploads.one() == 200, 30, "an upload to be accepted after the restart", interval=0.5)
    assert uploads.burst(5) == [200] * 5
    refused = len(uploads.refused)
    uploads.retry_refused()

    print(f"RabbitMQ restart: answered 503 while down={refused} (all sent again)")
    documents = assert_none_lost(record_property, "RabbitMQ restart", stack.client, uploads.accepted, timeout=90)
    assert_indexed_once(stack, documents)
    # An ack that could not go out because the broker left is not an analysis crash.
    assert not [r for r in worker.records() if r.get("message") == "analysis crashed"]


def analysed(stack) -> int:
    """Analyses stored so far (each stored analysis counts its format once)."""
    counts = stack.redis_server.client().zrange(keys.format_counts(), 0, -1, withscores=True)
    return int(sum(score for _, score in counts))


@pytest.mark.parametrize("stop_signal, appendfsync", [
    (signal.SIGTERM, "everysec"),  # a pod restart: Redis writes its append-only file and exits
    (signal.SIGKILL, "always"),  # a crash: only what was fsynced before each reply survives
], ids=["restart", "crash"])
def test_redis_restart_during_processing(stack, record_property, stop_signal, appendfsync):
    stack = stack(appendfsync=appendfsync)
    stack.start_worker(FAULT_DELAY_SECONDS=0.2)
    client = stack.client
    digests = [upload(client, jpeg(seed=seed), "before.jpg") for seed in range(200, 220)]
    wait_until(lambda: analysed(stack) >= 3, 20, "some images to be analysed")
    stack.redis_server.stop(stop_signal)

    refused = stack.client.post("/scan/image/down.jpg", data=jpeg(seed=299))
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["error"]
    lookup = stack.client.get(f"/images/{digests[0]}")
    assert lookup.status_code == 503 and lookup.get_json()["error"]
    assert stack.client.get("/readyz").status_code == 503

    stack.redis_server.start()
    # The REST recovers without a restart.
    after = upload(stack.client, jpeg(seed=300), "after.jpg")
    documents = assert_none_lost(record_property, f"Redis {signal.Signals(stop_signal).name}", stack.client,
                                 [*digests, after])
    assert_indexed_once(stack, documents)


def test_the_log_bus_carries_on_after_a_broker_restart(stack):
    """The log thread reconnects by itself after the broker restarts and carries on publishing
    (its channel closed under it, the frames of a batch are not written on it)."""
    stack = stack(own_rabbit=True)
    handler = LogBusHandler(stack.settings, "rest")
    logger = logging.getLogger("imagescan.rest.restarted")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def bound_queue():
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", stack.rabbit.port))
        channel = connection.channel()
        return connection, channel, every_log_message(channel)

    def messages(channel, queue) -> list[str]:
        seen = []
        while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
            document = json.loads(message[2])
            if document.get("logger") == logger.name:
                seen.append(document["message"])
        return seen

    try:
        connection, channel, queue = bound_queue()
        logger.info("before the restart")
        before: list[str] = []
        wait_until(lambda: before.extend(messages(channel, queue)) or before, 10, "the first record on the bus")
        assert before == ["before the restart"]
        stack.rabbit.stop()
        logger.info("while the broker is away")
        stack.rabbit.start()
        connection, channel, queue = bound_queue()  # the old queue was exclusive to a closed connection
        logger.info("after the restart")
        after: list[str] = []
        wait_until(lambda: after.extend(messages(channel, queue)) or "after the restart" in after, 30,
                   "records on the bus after the broker restarted")
        connection.close()
    finally:
        logger.removeHandler(handler)
    assert after[-1] == "after the restart"
