"""RabbitMQ that stops answering without closing anything (a paused VM, a stalled node).

TCP stays up, so only AMQP heartbeats notice: an upload is answered 503 in bounded time
instead of waiting for ever for its confirm, and the REST carries on once the broker is back.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.conftest import assert_none_lost, refused_while_down, upload
from tests.imagefactory import jpeg

pytestmark = pytest.mark.faults


def test_upload_to_a_frozen_broker_is_refused_in_bounded_time(stack, record_property):
    stack = stack()
    client = stack.client
    accepted = [upload(client, jpeg(seed=95), "before.jpg")]
    # Idle for longer than the heartbeat window: the broker may drop the idle publisher
    # connection, and the next upload must still go through (on a fresh connection).
    time.sleep(stack.settings.network_timeout * 5)
    accepted.append(upload(client, jpeg(seed=96), "after-idle.jpg"))

    os.killpg(stack.rabbit.process.pid, signal.SIGSTOP)
    try:
        took = refused_while_down(client, jpeg(seed=97), "frozen.jpg", within=60)
        print(f"frozen broker: upload answered 503 after {took:.1f}s")
    finally:
        os.killpg(stack.rabbit.process.pid, signal.SIGCONT)
    accepted.append(upload(client, jpeg(seed=97), "frozen.jpg"))  # the client's retry
    stack.start_worker()
    assert_none_lost(record_property, "frozen broker", client, accepted)
