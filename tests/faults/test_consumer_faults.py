"""The worker's connection to RabbitMQ breaks, or Redis is away, in the middle of its work."""

from __future__ import annotations

import json
import time

import pika
import pytest

from imagescan import keys, topology
from tests.faults.conftest import upload, wait_all_done
from tests.faults.engines import SLOW_WIDTH
from tests.faults.servers import wait_until
from tests.faults.test_worker_faults import formats_indexed
from tests.imagefactory import jpeg

pytestmark = pytest.mark.faults


def test_a_dropped_connection_never_makes_a_worker_run_two_analyses_at_once(stack):
    stack = stack()
    slow_seconds = 25
    worker = stack.start_worker(FAULT_SLOW_SECONDS=slow_seconds)
    slow = upload(stack.client, jpeg(SLOW_WIDTH, 40, seed=400), "slow.jpg")
    stack.wait_for_file("slow-started-*")
    started = time.monotonic()
    stack.rabbit.ctl("close_all_connections", "connection dropped by the test")
    other = upload(stack.client, jpeg(seed=401), "other.jpg")  # the REST reconnects at once
    wait_until(lambda: any("reconnecting" in r.get("message", "") for r in worker.records()), 10,
               "the worker to notice the dropped connection")
    time.sleep(3)  # the worker could have reconnected by now (its back-off starts at 0.5 s)
    assert time.monotonic() - started < slow_seconds - 1, "too slow to tell: the first analysis ended"
    assert len(stack.fault_lines("analyses")) == 1, "a second analysis started beside the first"
    documents = wait_all_done(stack.client, [slow, other], timeout=60)
    assert {d["status"] for d in documents.values()} == {"done"}
    # The slow image's message came back after the drop: the image was done, nothing ran again.
    assert len(stack.fault_lines("analyses")) == 2
    assert formats_indexed(stack) == 2
    assert not [r for r in worker.records() if r.get("message") == "analysis crashed"]
    wait_until(lambda: stack.rabbit.queue_depth(topology.WORK_QUEUE) == 0, 20, "the queue to drain")


def test_dead_letters_wait_for_redis_without_a_busy_loop(stack):
    """While Redis is down the worker keeps the dead letter and tries again after a pause: it is
    not handed back to the queue over and over (a second consumer on the queue would get it),
    and the log has one warning per try, not a stack trace each time."""
    stack = stack()
    sha224 = upload(stack.client, jpeg(seed=410), "dead.jpg")
    stack.purge_queues()  # only the dead letter below reaches the worker
    sha256 = stack.client.get(f"/images/{sha224}").get_json()["digests"]["sha256"]
    stack.redis_server.stop()
    worker = stack.start_worker()
    wait_until(lambda: any(r.get("message", "").startswith("worker consuming") for r in worker.records()),
               30, "the worker to consume")
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", stack.rabbit.port))
    try:
        channel = connection.channel()
        channel.basic_publish(topology.DEAD_LETTER_EXCHANGE, "", json.dumps(
            {"kind": "analyze", "sha256": sha256, "request_id": ""}).encode())
        wait_until(lambda: any("dead-lettered" in r.get("message", "") for r in worker.records()), 30,
                   "the worker to try the dead letter")
        returned = []

        def bounced(spy_channel, method, _properties, _body):
            returned.append(method.delivery_tag)
            spy_channel.basic_nack(method.delivery_tag, requeue=True)

        channel.basic_qos(prefetch_count=1)
        channel.basic_consume(topology.DEAD_LETTER_QUEUE, bounced)
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.5)
    finally:
        connection.close()
    complaints = [r for r in worker.records() if "dead-lettered" in r.get("message", "")]
    assert not returned, f"the dead letter went back to the queue {len(returned)} times while Redis was down"
    assert not [r for r in complaints if "exception" in r], "a stack trace for each try"
    stack.redis_server.start()
    wait_until(lambda: stack.redis_server.client().hget(keys.image(sha256), "status") == b"failed", 40,
               "the dead letter to be recorded once Redis is back")
    wait_until(lambda: stack.rabbit.queue_depth(topology.DEAD_LETTER_QUEUE) == 0, 20, "the dead letter acked")
