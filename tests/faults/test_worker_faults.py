"""Worker processes killed, stopped, recycled or fed poison: no accepted image is lost or indexed twice."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

import pika
import pytest

from imagescan import keys, topology
from tests.faults.conftest import MAX_ATTEMPTS, report_figures, upload, wait_all_done, wait_for_status
from tests.faults.engines import EXITING_WIDTH, RAISING_WIDTH, SLOW_WIDTH
from tests.faults.servers import wait_until
from tests.imagefactory import jpeg

pytestmark = pytest.mark.faults


def formats_indexed(stack) -> int:
    """How many analyses were stored: save_analysis counts each image's format exactly once."""
    return int(sum(score for _, score in stack.redis_server.client().zrange(keys.format_counts(), 0, -1,
                                                                               withscores=True)))


def assert_indexed_once(stack, documents: dict) -> None:
    client = stack.redis_server.client()
    for document in documents.values():
        plate = document["plates"][0]["plate"]
        assert client.smembers(keys.plate_images(plate)) == {document["digests"]["sha256"].encode()}
    assert formats_indexed(stack) == len(documents), "an image was indexed more than once"


def test_worker_killed_mid_image_another_worker_completes_it(stack, record_property):
    stack = stack()
    first = stack.start_worker(FAULT_SLOW_SECONDS=120)
    client = stack.client
    slow = upload(client, jpeg(SLOW_WIDTH, 40, seed=1), "slow.jpg")
    stack.wait_for_file("slow-started-*")  # the first worker is now inside the analysis
    stack.start_worker()
    others = [upload(client, jpeg(seed=seed)) for seed in range(2, 8)]
    first.signal(signal.SIGKILL)
    assert first.process.wait(10) == -signal.SIGKILL

    documents = wait_all_done(client, [slow, *others])
    done = [d for d in documents.values() if d["status"] == "done"]
    figure = report_figures(record_property, "worker SIGKILL", 7, len(done), 7 - len(done))
    assert len(done) == 7, figure
    assert_indexed_once(stack, documents)
    slow_analyses = [line for line in stack.fault_lines("analyses")
                     if line.split()[1] == str(first.process.pid)]
    assert slow_analyses, "the killed worker never started the slow image"


def test_sigterm_lets_the_worker_finish_the_image_in_hand(stack, record_property):
    stack = stack()
    worker = stack.start_worker(child_only=False, FAULT_SLOW_SECONDS=3)  # the supervisor
    client = stack.client
    slow = upload(client, jpeg(SLOW_WIDTH, 40, seed=20), "slow.jpg")
    stack.wait_for_file("slow-started-*")
    worker.signal(signal.SIGTERM)  # forwarded to the child, which finishes the image first
    assert worker.process.wait(30) == 0
    document = stack.client.get(f"/images/{slow}").get_json()
    figure = report_figures(record_property, "worker SIGTERM", 1, int(document["status"] == "done"),
                            int(document["status"] != "done"))
    assert document["status"] == "done", figure
    assert len(stack.fault_lines("analyses")) == 1, "the image was analysed again instead of finished"
    assert stack.rabbit.queue_depth(topology.WORK_QUEUE) == 0, "the finished message was not acked"


def test_supervisor_recycles_the_worker_after_max_images(stack, record_property):
    stack = stack()
    worker = stack.start_worker(child_only=False, WORKER_MAX_IMAGES=2)
    client = stack.client
    digests = [upload(client, jpeg(seed=seed)) for seed in range(30, 35)]
    documents = wait_all_done(client, digests)
    done = sum(d["status"] == "done" for d in documents.values())
    figure = report_figures(record_property, "worker recycling", 5, done, 5 - done)
    assert done == 5, figure
    assert_indexed_once(stack, documents)
    # A process may take one more image that arrived as it acked its last (never fewer than
    # two: prefetch is 1 and it leaves once idle), so 5 images need at least 2 processes.
    per_process = Counter(line.split()[1] for line in stack.fault_lines("analyses"))
    assert len(per_process) >= 2 and max(per_process.values()) <= 3, per_process
    restarts = [r for r in worker.records() if r.get("exit_code") == 0]
    # Each process that analysed was started by the supervisor; the last one may have left too.
    assert len(per_process) - 1 <= len(restarts) <= len(per_process), (restarts, per_process)


def test_rss_limit_below_the_baseline_still_makes_progress(stack, record_property):
    """WORKER_MAX_RSS_MB under what a fresh worker already uses: one image per process, not none."""
    stack = stack()
    stack.start_worker(child_only=False, WORKER_MAX_RSS_MB=1)
    client = stack.client
    digests = [upload(client, jpeg(seed=seed)) for seed in range(36, 39)]
    documents = wait_all_done(client, digests, timeout=60)
    done = sum(d["status"] == "done" for d in documents.values())
    figure = report_figures(record_property, "worker RSS recycling", 3, done, 3 - done)
    assert done == 3, figure
    assert_indexed_once(stack, documents)
    assert len({line.split()[1] for line in stack.fault_lines("analyses")}) >= 2


@pytest.mark.parametrize("width, deliveries", [(RAISING_WIDTH, "deliveries-raising"),
                                                (EXITING_WIDTH, "deliveries-exiting")],
                         ids=["analysis-raises", "worker-process-dies"])
def test_poison_image_is_dead_lettered_after_max_attempts(stack, record_property, width, deliveries):
    stack = stack()
    stack.start_worker(child_only=False)  # the supervisor restarts a child that died on it
    client = stack.client
    poison = upload(client, jpeg(width, 40, seed=40), "poison.jpg")
    document = wait_for_status(client, poison, ("failed",), timeout=60)
    assert f"{MAX_ATTEMPTS} attempts" in document["error"]
    assert len(stack.fault_lines(deliveries)) == MAX_ATTEMPTS, "delivered a wrong number of times"
    after = upload(client, jpeg(seed=41), "after.jpg")
    done = wait_for_status(client, after)["status"] == "done"
    figure = report_figures(record_property, f"poison {deliveries}", 2, 1 + done, 1 - done)
    assert done, figure
    assert stack.rabbit.queue_depth(topology.DEAD_LETTER_QUEUE) == 0, "the dead letter was not recorded"


def test_request_id_follows_an_image_from_rest_to_worker(stack, record_property):
    stack = stack()
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", stack.rabbit.port))
    channel = connection.channel()
    topology.declare_logs(channel)
    logs_queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(logs_queue, topology.LOG_EXCHANGE, routing_key="*.worker.*")
    worker = stack.start_worker()
    request_id = "fault-req-7f3a"
    sha224 = upload(stack.client, jpeg(seed=50), "traced.jpg", **{"X-Request-ID": request_id})
    document = wait_for_status(stack.client, sha224)
    sha256 = document["digests"]["sha256"]
    figure = report_figures(record_property, "request id", 1, int(document["status"] == "done"),
                            int(document["status"] != "done"))
    assert document["status"] == "done", figure

    def traced(record: dict) -> bool:
        return record.get("request_id") == request_id and record.get("sha256") == sha256

    wait_until(lambda: any(traced(r) for r in worker.records()), 10, "the request id in the worker's stderr")
    on_bus = []

    def read_bus():
        while (message := channel.basic_get(logs_queue, auto_ack=True))[0] is not None:
            on_bus.append(json.loads(message[2]))
        return any(traced(r) and r["service"] == "worker" for r in on_bus)

    try:
        wait_until(read_bus, 10, "the request id on the logs exchange")
    finally:
        connection.close()


def test_two_workers_analysing_one_image_at_once_index_it_once(stack, record_property):
    """A redelivery can overlap the first analysis: both finish, one write counts."""
    stack = stack()
    client = stack.client
    first = stack.start_worker(FAULT_SLOW_SECONDS=4)
    data = jpeg(SLOW_WIDTH, 40, seed=65)
    sha224 = upload(client, data, "twice.jpg")
    stack.wait_for_file("slow-started-*")  # the first worker holds the image
    second = stack.start_worker()
    assert upload(client, data, "twice.jpg") == sha224  # a second message: the second worker takes it
    wait_until(lambda: len(stack.fault_lines("analyses")) == 2, 30, "both workers to analyse the image")
    document = wait_for_status(client, sha224)
    assert {line.split()[1] for line in stack.fault_lines("analyses")} == {
        str(first.process.pid), str(second.process.pid)}
    done = document["status"] == "done"
    figure = report_figures(record_property, "concurrent analyses", 1, int(done), int(not done))
    assert done, figure
    # The first worker's write comes last, finds the image done and changes nothing.
    wait_until(lambda: any(r.get("outcome") == "duplicate" for r in first.records()), 30,
               "the first worker to finish its analysis")
    assert formats_indexed(stack) == 1, "the image was indexed by both analyses"
    assert_indexed_once(stack, {sha224: document})


def test_duplicate_messages_do_not_index_twice(stack, record_property):
    """At-least-once delivery: the same image queued many times is analysed and counted once."""
    stack = stack()
    client = stack.client
    data = jpeg(seed=60)
    sha224 = upload(client, data, "a.jpg")
    for _ in range(4):  # before any worker runs: five messages wait for one image
        assert upload(client, data, "a.jpg") == sha224
    worker = stack.start_worker()
    document = wait_for_status(client, sha224)
    wait_until(lambda: stack.rabbit.queue_depth(topology.WORK_QUEUE) == 0, 20, "the queue to drain")
    time.sleep(0.5)
    done = int(document["status"] == "done")
    figure = report_figures(record_property, "duplicate messages", 1, done, 1 - done)
    assert done, figure
    assert formats_indexed(stack) == 1
    assert worker.process.poll() is None
