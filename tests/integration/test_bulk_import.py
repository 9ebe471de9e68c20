"""The batched import (what the throughput bench fills Redis with) writes exactly what uploads
followed by analyses write, one image at a time."""

from __future__ import annotations

import os
import sys

import pytest
import redis

from imagescan import keys
from imagescan.store import ImageStore
from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
import queries  # bench/ is not a package: found through sys.path

# Fields that hold the time of writing, which two writes a moment apart cannot share (`ts`:
# the listing's score, also the record's incarnation).
MOMENTS = {b"received_at", b"analyzed_at", b"updated_at", b"ts"}
SOME_TIME_AGO = 1e9  # a sorted-set score above this is a Unix time (names, recent images)


def snapshot(client: redis.Redis) -> dict:
    """Every key with its value; times of writing replaced by a mark, scores dropped."""
    state: dict = {}
    markers = []  # the counting steps' markers are named after an incarnation (a moment): counted
    for key in client.scan_iter(count=1000):
        if key.startswith(keys.stats_step_done("", "", "").rsplit(":", 1)[0].encode() + b":"):
            markers.append((client.get(key), client.ttl(key) > 0))
            continue
        kind = client.type(key).decode()
        if kind == "hash":
            value = {f: (b"<moment>" if f in MOMENTS else v) for f, v in client.hgetall(key).items()}
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = sorted((m, "<moment>" if score > SOME_TIME_AGO else score)
                           for m, score in client.zrange(key, 0, -1, withscores=True))
        elif kind == "string":
            value = client.get(key)
        else:
            value = kind
        state[key] = (kind, value, client.ttl(key) > 0)
    state[b"<counting step markers>"] = sorted(markers)
    return state


def one_at_a_time(store: ImageStore, images: list[dict]) -> None:
    for image in images:
        image = dict(image)
        digests, size, name = image.pop("digests"), image.pop("size"), image.pop("name")
        store.register_upload(digests, size, name)
        store.save_analysis(digests.sha256, **image)


@pytest.fixture
def store(redis_client) -> ImageStore:
    redis_client.flushall()
    return ImageStore(redis_client)


def test_a_batched_import_writes_the_same_keys_and_values_as_single_writes(store, redis_client):
    images = [queries.bench_image(i) for i in range(40)]
    one_at_a_time(store, images)
    single = snapshot(redis_client)
    redis_client.flushall()
    queries.populate_range(ImageStore(redis_client), 0, 40)  # as a process started on the empty Redis
    batched = snapshot(redis_client)
    assert batched == single
    assert len(batched) > 40 * 5  # records, aliases, names, plate sets, fuzzy buckets


def test_imported_images_answer_queries_like_analysed_ones(store, client, app):
    app.extensions["imagescan"].store.redis.flushall()
    queries.populate_range(app.extensions["imagescan"].store, 0, 30)
    image = queries.bench_image(7)
    plate = queries.plate_of(7)
    assert client.get(f"/license/{plate}").get_json() == [image["digests"].md5]
    assert client.get(f"/hash/{image['digests'].md5}").get_json() == [
        {"license": plate, "confidence": 0.9, "latitude": 40.0, "longitude": -105.2}]
    document = client.get(f"/images/{image['digests'].sha256}").get_json()
    assert document["status"] == "done" and document["names"] == ["car-7.jpg"]


def test_the_populating_processes_write_every_image_once(settings, redis_client):
    redis_client.flushall()
    env = {**os.environ, "REDIS_HOST": settings.redis_host, "REDIS_PORT": str(settings.redis_port)}
    queries.populate(env, 1200, processes=2, slice_size=300)
    store = ImageStore(redis_client)
    assert all(store.status(queries.digests_of(i).sha256) == "done" for i in (0, 299, 300, 1199))
    assert sum(redis_client.zcard(keys.recent_images(shard)) for shard in range(keys.SHARDS)) == 1200
    assert len(store.known_plates()) == 1200
