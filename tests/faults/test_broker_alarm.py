"""RabbitMQ up but refusing publishes (memory or disk alarm): 503 in bounded time, then recovery."""

from __future__ import annotations

import threading
import time

import pytest

from tests.faults.conftest import report_figures, wait_all_done
from tests.faults.test_worker_faults import upload
from tests.imagefactory import jpeg

pytestmark = pytest.mark.faults


def test_upload_to_a_blocked_broker_is_refused_in_bounded_time(stack, record_property):
    stack = stack()
    client = stack.client
    accepted = [upload(client, jpeg(seed=90), "before-alarm.jpg")]
    stack.rabbit.ctl("set_vm_memory_high_watermark", "0")  # the alarm goes off: publishers are blocked
    try:
        answers: list = []
        sender = threading.Thread(target=lambda: answers.append(
            client.post("/scan/image/during-alarm.jpg", data=jpeg(seed=91))))
        started = time.monotonic()
        sender.start()
        # pika gives up on a blocked connection after 6 x NETWORK_TIMEOUT; no second wait after that.
        sender.join(stack.settings.network_timeout * 6 + 8)
        assert not sender.is_alive(), "an upload waited on a blocked broker for more than one timeout"
        assert answers[0].status_code == 503, answers[0].get_json()
        assert int(answers[0].headers["Retry-After"]) > 0
        print(f"broker alarm: upload answered 503 after {time.monotonic() - started:.1f}s")
    finally:
        stack.rabbit.ctl("set_vm_memory_high_watermark", "0.4")
    accepted.append(upload(client, jpeg(seed=91), "during-alarm.jpg"))  # the client's retry
    stack.start_worker()
    documents = wait_all_done(client, accepted)
    processed = sum(d["status"] == "done" for d in documents.values())
    figure = report_figures(record_property, "broker alarm", len(accepted), processed, len(accepted) - processed)
    assert processed == len(accepted), figure
