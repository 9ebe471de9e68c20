"""The bulk lane: interactive work queued behind a bulk backlog is analysed first. Real RabbitMQ."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from imagescan import topology
from tests.conftest import queue_depth
from worker import consumer as consumer_module


def test_renders_never_go_to_the_bulk_lane():
    assert topology.work_routing_key(topology.RENDER, bulk=True) == topology.RENDER
    assert topology.work_routing_key(topology.ANALYZE, bulk=True) == "analyze.bulk"


def test_interactive_work_overtakes_a_bulk_backlog(settings, publisher, monkeypatch):
    handled: list[str] = []
    done = threading.Event()

    def handle(services, message, should_stop):
        time.sleep(0.05)  # an analysis takes a while: the pushed message arrives meanwhile
        handled.append(message["sha256"])
        if len(handled) == 9:
            done.set()

    monkeypatch.setattr(consumer_module.handler, "handle", handle)
    for i in range(6):
        publisher.publish(topology.ANALYZE, sha256=f"bulk-{i}", bulk=True)
    for i in range(3):
        publisher.publish(topology.ANALYZE, sha256=f"interactive-{i}")
    worker = consumer_module.Consumer(SimpleNamespace(settings=settings))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert done.wait(30), f"only {handled} were handled"
    finally:
        worker.stop()
        thread.join(10)
    # At most the one bulk analysis that started before the interactive lane was seen.
    interactive = [position for position, sha in enumerate(handled) if sha.startswith("interactive")]
    assert max(interactive) <= 3, handled
    assert sorted(handled) == sorted([f"bulk-{i}" for i in range(6)] + [f"interactive-{i}" for i in range(3)])
    assert queue_depth(settings, topology.BULK_QUEUE) == 0 and queue_depth(settings, topology.WORK_QUEUE) == 0


def test_a_bulk_upload_says_so_and_lands_in_the_bulk_lane(settings, client):
    from tests.imagefactory import jpeg

    assert client.put("/image/one.jpg", data=jpeg(seed=31)).status_code == 200
    assert client.put("/image/many.jpg", data=jpeg(seed=32), headers={"X-Imagescan-Lane": "bulk"}).status_code == 200
    assert client.put("/image/more.jpg?lane=bulk", data=jpeg(seed=33)).status_code == 200
    assert queue_depth(settings, topology.WORK_QUEUE) == 1
    assert queue_depth(settings, topology.BULK_QUEUE) == 2
