"""RabbitMQ that stops answering without closing anything (a paused VM, a stalled node).

TCP stays up, so only AMQP heartbeats notice: an upload is answered 503 in bounded time
instead of waiting for ever for its confirm, and the REST carries on once the broker is back.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.faults.conftest import assert_none_lost, refused_while_down, upload
from tests.imagefactory import jpeg

pytestmark = pytest.mark.faults


def test_upload_to_a_frozen_broker_is_refused_in_bounded_time(stack, record_property):
    stack = stack()
    client = stack.client
    accepted = [upload(client, jpeg(seed=95), "before.jpg")]
    publisher = stack.app.extensions["imagescan"].publisher
    connection = publisher._connection
    # Idle for longer than the heartbeat window: without the keep-alive the broker drops the
    # idle publisher connection (the next upload would still pass, on a fresh connection, so
    # the connection itself is what is checked).
    time.sleep(stack.settings.network_timeout * 12)  # 6 heartbeat periods: well past the broker's 2
    assert publisher._connection is connection and connection.is_open, "the idle connection was lost"
    accepted.append(upload(client, jpeg(seed=96), "after-idle.jpg"))
    assert publisher._connection is connection, "the upload after idling needed a new connection"

    os.killpg(stack.rabbit.process.pid, signal.SIGSTOP)
    try:
        took = refused_while_down(client, jpeg(seed=97), "frozen.jpg", within=60)
        print(f"frozen broker: upload answered 503 after {took:.1f}s")
    finally:
        os.killpg(stack.rabbit.process.pid, signal.SIGCONT)
    accepted.append(upload(client, jpeg(seed=97), "frozen.jpg"))  # the client's retry
    stack.start_worker()
    assert_none_lost(record_property, "frozen broker", client, accepted)


def test_uploads_during_a_stall_do_not_queue_behind_each_other_nor_hold_up_readiness(stack):
    """Each waiting upload gets its 503 within one upload's bound, not one bound per upload
    ahead of it; /readyz answers within a probe's timeout and stays 200 while Redis serves."""
    stack = stack()
    client = stack.client
    upload(client, jpeg(seed=130), "warm.jpg")  # the publisher now holds an open connection
    answers: dict[int, tuple[int, float]] = {}

    def send(seed: int) -> None:
        started = time.monotonic()
        status = client.post(f"/scan/image/stalled-{seed}.jpg", data=jpeg(seed=seed)).status_code
        answers[seed] = (status, time.monotonic() - started)

    os.killpg(stack.rabbit.process.pid, signal.SIGSTOP)
    try:
        senders = [threading.Thread(target=send, args=(seed,)) for seed in range(131, 135)]
        for sender in senders:
            sender.start()
        time.sleep(1)
        started = time.monotonic()
        ready = client.get("/readyz")
        readiness_took = time.monotonic() - started
        for sender in senders:
            sender.join(120)
    finally:
        os.killpg(stack.rabbit.process.pid, signal.SIGCONT)
    assert readiness_took < 3, f"/readyz took {readiness_took:.1f}s (the probe gives up after 3 s)"
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"]["redis"] == "ok"
    assert sorted(status for status, _ in answers.values()) == [503] * 4, answers
    slowest = max(took for _, took in answers.values())
    print(f"stalled broker: 4 concurrent uploads answered 503 within {slowest:.1f}s")
    assert slowest < 35, f"uploads waited behind each other: {answers}"
