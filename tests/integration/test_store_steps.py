"""The single-slot steps around an image's record (imagescan.imagesteps): what a crash between
two of them leaves, and how the next delivery, retry or erasure finishes it. Run on one Redis
and on the cluster (tests/integration/conftest.py)."""

from __future__ import annotations

import pytest
import redis

from imagescan import erasure, imagesteps, keys, recent
from imagescan.digests import Digests
from imagescan.store import DONE, open_storage
from tests.imagefactory import jpeg
from tests.integration.traces import redis_traces

ANALYSIS = {"format": "JPEG", "width": 8, "height": 8, "camera_label": "Canon - X",
            "results": {"plates": [{"plate": "AB12CD", "confidence": 0.9}]}}
FLAGS = imagesteps.PENDING_FIELDS


@pytest.fixture
def storage(settings, redis_client):
    client, store, blobs = open_storage(settings)
    yield store, blobs
    client.close()


def dies_once(monkeypatch, module, name: str):
    """The process 'dies' (ConnectionError) the first time module.name is called."""
    real, calls = getattr(module, name), []

    def step(*args, **kwargs):
        if not calls:
            calls.append(args)
            raise redis.ConnectionError("the process died here")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, step)
    return calls


def listed(store) -> list[str]:
    return [row["sha256"] for row in recent.page(store.redis, None, 10)["images"]]


def test_a_bulk_import_writes_what_an_upload_and_its_analysis_write(storage):
    store, _ = storage
    one, two = Digests.of(jpeg(seed=1)), Digests.of(jpeg(seed=2))
    store.register_upload(one, 10, "one.jpg")
    store.save_analysis(one.sha256, **ANALYSIS)
    store.import_analysed([{"digests": two, "size": 10, "name": "two.jpg", **ANALYSIS},
                           {"digests": one, "size": 10, "name": "again.jpg", **ANALYSIS}])
    for digests in (one, two):
        assert store.resolve(digests.md5) == store.resolve(digests.sha224) == digests.sha256
        assert store.status(digests.sha256) == DONE
        assert store.redis.hmget(keys.image(digests.sha256), FLAGS) == [None] * len(FLAGS)
    assert store.images_with_plate("AB12CD") == sorted([one.sha256, two.sha256])
    assert store.plates_near("AB12C", 1) == [("AB12CD", 1)]
    assert store.top_formats() == [("JPEG", 2)] and store.top_cameras() == [("Canon - X", 2)]
    assert sum(store.uploads_per_day().values()) == 2
    assert sorted(listed(store)) == sorted([one.sha256, two.sha256])
    assert store.names(one.sha256) == ["one.jpg", "again.jpg"]


def test_an_upload_cut_short_after_its_record_is_finished_by_the_worker_once(storage, monkeypatch):
    store, _ = storage
    digests = Digests.of(jpeg(seed=3))
    dies_once(monkeypatch, imagesteps, "queue_listing")
    with pytest.raises(redis.ConnectionError):
        store.register_upload(digests, 10, "cut.jpg")
    # The record says what is missing; nothing points at it yet.
    assert store.resolve(digests.sha256) == digests.sha256 and store.resolve(digests.md5) is None
    assert store.redis.hget(keys.image(digests.sha256), imagesteps.UNLISTED) == b"1"
    assert listed(store) == [] and store.uploads_per_day() == {}

    store.mark_processing(digests.sha256)  # the worker takes the image: it finishes the upload
    assert store.resolve(digests.md5) == digests.sha256 and listed(store) == [digests.sha256]
    store.register_upload(digests, 10, "cut.jpg")  # the client's retry changes nothing more
    assert sum(store.uploads_per_day().values()) == 1
    assert store.redis.hget(keys.image(digests.sha256), imagesteps.UNLISTED) is None


def test_counting_cut_short_is_finished_by_the_redelivery_and_counts_once(storage):
    store, _ = storage
    digests = Digests.of(jpeg(seed=4))
    store.register_upload(digests, 10, "count.jpg")
    store.save_analysis(digests.sha256, **ANALYSIS)
    # What a crash between counting and clearing the flag leaves (on a cluster: two nodes).
    store.redis.hset(keys.image(digests.sha256), imagesteps.UNCOUNTED, "1")
    assert store.images_with_plate("AB12CD") == [digests.sha256]  # `done` means findable by plate
    assert store.save_analysis(digests.sha256, **ANALYSIS) is False  # the redelivery
    assert store.top_formats() == [("JPEG", 1)] and store.top_cameras() == [("Canon - X", 1)]
    assert store.redis.hget(keys.image(digests.sha256), imagesteps.UNCOUNTED) is None


def erasure_cut_short(storage, monkeypatch, seed: int) -> Digests:
    """An analysed image whose erasure died after its record went, before its aliases did."""
    store, blobs = storage
    digests = Digests.of(jpeg(seed=seed))
    store.register_upload(digests, 10, "first.jpg")
    store.save_analysis(digests.sha256, **ANALYSIS)
    dies_once(monkeypatch, imagesteps, "unlist_image")
    with pytest.raises(redis.ConnectionError):
        erasure.erase(store, blobs, digests.sha256, who="test")
    return digests


def test_an_erasure_cut_short_is_gone_for_readers_and_finished_by_a_retry(storage, monkeypatch):
    store, blobs = storage
    digests = erasure_cut_short(storage, monkeypatch, seed=5)
    # Gone for every reader, though an alias and the listing entry still point at it.
    assert store.analysis(digests.sha256) is None and listed(store) == []
    assert store.md5s(store.images_with_plate("AB12CD")) == []
    assert store.resolve(digests.md5) == digests.sha256  # how a retried DELETE by MD5 finds it
    assert erasure.unfinished(store.redis, digests.sha256) == digests.sha256  # and by SHA-256

    erased = erasure.erase(store, blobs, digests.sha256, who="test")  # the retry
    assert erased.removed["plates"] == 1
    assert redis_traces(store.redis, [digests.md5, digests.sha224, digests.sha256]) == []
    assert store.known_plates() == [] and store.top_formats() == [] and sum(store.uploads_per_day().values()) == 0
    assert erasure.erase(store, blobs, digests.sha256, who="test") is None


def test_the_same_bytes_sent_during_a_cut_short_erasure_finish_it_then_make_a_new_image(storage, monkeypatch):
    store, _ = storage
    digests = erasure_cut_short(storage, monkeypatch, seed=6)
    assert store.register_upload(digests, 10, "second.jpg") == (True, "queued")
    assert erasure.unfinished(store.redis, digests.sha256) is None
    assert store.names(digests.sha256) == ["second.jpg"] and store.images_with_plate("AB12CD") == []
    assert store.resolve(digests.md5) == digests.sha256 and listed(store) == [digests.sha256]
    assert store.top_formats() == [] and sum(store.uploads_per_day().values()) == 1
