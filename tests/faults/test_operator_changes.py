"""An operator changes a documented setting and restarts: the stack keeps working.

Queue arguments are fixed when RabbitMQ first creates a queue; a later declaration with other
arguments is refused (PRECONDITION_FAILED). So the work queue carries only arguments no
setting changes, and attempts are counted by the worker itself (in Redis), which also makes
the count independent of how a RabbitMQ release counts returned messages.
"""

from __future__ import annotations

import subprocess
import sys

import pika
import pytest

from imagescan import topology
from tests.faults.conftest import MAX_ATTEMPTS, assert_none_lost, upload, wait_for_status
from tests.faults.engines import EXITING_WIDTH, RAISING_WIDTH
from tests.faults.servers import REPO_ROOT, wait_until
from tests.imagefactory import jpeg

pytestmark = pytest.mark.faults


def declare_queue_as(port: int, arguments: dict) -> None:
    """The work queue as another release (or a hand-made setup) left it on the broker."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    try:
        channel = connection.channel()
        channel.exchange_declare(topology.DEAD_LETTER_EXCHANGE, exchange_type="fanout", durable=True)
        channel.queue_declare(topology.WORK_QUEUE, durable=True, arguments=arguments)
    finally:
        connection.close()


def test_max_attempts_changed_across_a_broker_restart_keeps_the_stack_working(stack, record_property):
    stack = stack(own_rabbit=True)
    before = [upload(stack.client, jpeg(seed=300), "before.jpg")]
    stack.rabbit.stop()
    stack.rabbit.start()
    changed = stack.settings.replace(max_attempts=MAX_ATTEMPTS + 2)
    from rest.app import create_app

    app = create_app(changed)
    try:
        client = app.test_client()
        after = [upload(client, jpeg(seed=301), "after.jpg")]
        stack.start_worker(MAX_ATTEMPTS=MAX_ATTEMPTS + 2)
        assert_none_lost(record_property, "MAX_ATTEMPTS changed", client, before + after)
    finally:
        app.extensions["imagescan"].publisher.close()


def test_a_queue_left_with_a_delivery_limit_by_an_earlier_release_is_used_as_it_is(stack, record_property):
    stack = stack()
    declare_queue_as(stack.rabbit.port, {"x-queue-type": "quorum", "x-delivery-limit": 7,
                                         "x-dead-letter-exchange": topology.DEAD_LETTER_EXCHANGE})
    accepted = [upload(stack.client, jpeg(seed=310), "legacy.jpg")]
    worker = stack.start_worker()
    assert_none_lost(record_property, "queue with other arguments", stack.client, accepted)
    assert worker.process.poll() is None


@pytest.mark.parametrize("width, deliveries", [(RAISING_WIDTH, "deliveries-raising"),
                                                (EXITING_WIDTH, "deliveries-exiting")],
                         ids=["analysis-raises", "worker-process-dies"])
def test_attempts_are_counted_without_the_brokers_delivery_limit(stack, width, deliveries):
    """A queue with no delivery limit stands for a broker that does not count a return (RabbitMQ
    4.3 counts neither a nack nor a dropped connection): the worker's own count still stops at
    MAX_ATTEMPTS deliveries."""
    stack = stack()
    declare_queue_as(stack.rabbit.port, {"x-queue-type": "quorum",
                                         "x-dead-letter-exchange": topology.DEAD_LETTER_EXCHANGE})
    stack.start_worker(child_only=False)
    poison = upload(stack.client, jpeg(width, 40, seed=320), "poison.jpg")
    document = wait_for_status(stack.client, poison, ("failed",), timeout=60)
    assert f"{MAX_ATTEMPTS} attempts" in document["error"]
    assert len(stack.fault_lines(deliveries)) == MAX_ATTEMPTS
    after = upload(stack.client, jpeg(seed=321), "after.jpg")
    assert wait_for_status(stack.client, after)["status"] == "done"


def test_reuploading_a_failed_image_does_not_crash_the_workers_again(stack):
    stack = stack()
    worker = stack.start_worker(child_only=False)
    data = jpeg(EXITING_WIDTH, 40, seed=330)
    poison = upload(stack.client, data, "poison.jpg")
    wait_for_status(stack.client, poison, ("failed",), timeout=60)
    assert len(stack.fault_lines("deliveries-exiting")) == MAX_ATTEMPTS
    for _ in range(3):
        assert upload(stack.client, data, "again.jpg") == poison
    # An ordinary image queued behind the re-uploads: once it is done, they were all taken.
    after = upload(stack.client, jpeg(seed=331), "after.jpg")
    assert wait_for_status(stack.client, after)["status"] == "done"
    assert len(stack.fault_lines("deliveries-exiting")) == MAX_ATTEMPTS, "the failed image ran again"
    document = stack.client.get(f"/images/{poison}").get_json()
    assert document["status"] == "failed" and f"{MAX_ATTEMPTS} attempts" in document["error"]
    assert worker.process.poll() is None

    # A retry is deliberate (an operator's command) and bounded (MAX_ATTEMPTS more, no more).
    subprocess.run([sys.executable, "-m", "worker", "--retry", poison], cwd=REPO_ROOT,
                   env=stack.worker_env(), check=True, timeout=60, capture_output=True)
    wait_until(lambda: len(stack.fault_lines("deliveries-exiting")) == 2 * MAX_ATTEMPTS, 60,
               "the retried image's attempts")
    sentinel = upload(stack.client, jpeg(seed=332), "sentinel.jpg")
    assert wait_for_status(stack.client, sentinel)["status"] == "done"
    assert len(stack.fault_lines("deliveries-exiting")) == 2 * MAX_ATTEMPTS
    assert wait_for_status(stack.client, poison, ("failed",))["status"] == "failed"
