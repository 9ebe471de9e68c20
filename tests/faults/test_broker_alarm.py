"""RabbitMQ up but refusing publishes (memory or disk alarm): 503 in bounded time, then recovery."""

from __future__ import annotations

import pytest

from tests.faults.conftest import assert_none_lost, refused_while_down, upload
from tests.imagefactory import jpeg

pytestmark = pytest.mark.faults


def test_upload_to_a_blocked_broker_is_refused_in_bounded_time(stack, record_property):
    stack = stack()
    client = stack.client
    accepted = [upload(client, jpeg(seed=90), "before-alarm.jpg")]
    stack.rabbit.ctl("set_vm_memory_high_watermark", "0")  # the alarm goes off: publishers are blocked
    try:
        # pika gives up on a blocked connection after 6 x NETWORK_TIMEOUT; no second wait after that.
        took = refused_while_down(client, jpeg(seed=91), "during-alarm.jpg", stack.settings.network_timeout * 6 + 8)
        print(f"broker alarm: upload answered 503 after {took:.1f}s")
    finally:
        stack.rabbit.ctl("set_vm_memory_high_watermark", "0.4")
    accepted.append(upload(client, jpeg(seed=91), "during-alarm.jpg"))  # the client's retry
    stack.start_worker()
    assert_none_lost(record_property, "broker alarm", client, accepted)
