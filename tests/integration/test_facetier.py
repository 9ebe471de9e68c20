"""The face-search tier (`python -m facetier` processes) against a real Redis server.

Workers store faces in Redis and ask the tier's shards; these tests start real shard
processes on free ports, with their snapshots in the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis

from imagescan import keys
from imagescan.faceindex import FaceIndex, erase_faces, faces_for, matches_for
from imagescan.facesearch import FaceSearchUnavailable, InProcessFaceSearch, TierFaceSearch
from imagescan.faceshard import ShardIndex
from imagescan.facestore import PARTITIONS, FaceStore, partition_of_owner
from imagescan.facevectors import ShardVectors
from tests.integration.test_faceindex_redis import add_at_the_same_moment, person, photo_of, sha

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Shard:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def output(self) -> str:
        return self.log.read_text()


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def start_shard(redis_server, redis_client, tmp_path):
    started: list[Shard] = []

    def start(shard: int, shards: int, **settings) -> Shard:
        port = free_port()
        directory = tmp_path / f"shard{shard}"
        log = tmp_path / f"shard{shard}-{len(started)}.log"
        env = {**os.environ, "REDIS_HOST": redis_server.host, "REDIS_PORT": str(redis_server.port),
               "FACE_TIER_SHARD": str(shard), "FACE_TIER_SHARDS": str(shards), "FACE_TIER_PORT": str(port),
               "FACE_TIER_DIR": str(directory), "FACE_IVF_FROM": "0", "PYTHONPATH": str(REPO_ROOT),
               **{name: str(value) for name, value in settings.items()}}
        with open(log, "w") as output:
            process = subprocess.Popen([sys.executable, "-m", "facetier"], env=env, cwd=REPO_ROOT,
                                       stdout=output, stderr=subprocess.STDOUT)
        started.append(Shard(f"http://127.0.0.1:{port}", process, log))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                if get_json(f"{started[-1].url}/readyz")[0] == 200:
                    return started[-1]
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"shard {shard} not ready: {log.read_text()}")

    yield start
    for shard in started:
        shard.stop()


def tier_index(redis_server, urls) -> FaceIndex:
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    return FaceIndex(client, search=TierFaceSearch(FaceStore(client), urls))


def test_two_workers_racing_against_the_tier_always_match(redis_server, redis_client, start_shard, rng):
    shards = [start_shard(0, 2), start_shard(1, 2)]
    workers = [tier_index(redis_server, [s.url for s in shards]) for _ in range(2)]
    for round_number in range(60):
        identity = person(200_000 + round_number)
        images = [sha(f"t{round_number}w0"), sha(f"t{round_number}w1")]
        results = add_at_the_same_moment(workers, images, [photo_of(identity, rng), photo_of(identity, rng)])

        seen_by_either = {other for result in results for other, _ in result}
        assert seen_by_either and seen_by_either <= set(images), f"round {round_number}: {results}"
        assert [other for other, _ in matches_for(redis_client, images[0])] == [images[1]]
        assert [other for other, _ in matches_for(redis_client, images[1])] == [images[0]]
    assert [len(worker) for worker in workers] == [0, 0]  # the workers hold no encoding
    held = [get_json(f"{shard.url}/readyz")[1]["faces"] for shard in shards]
    assert sum(held) == 120 and min(held) > 0  # both shards hold some of the faces


def test_a_restarted_shard_loads_its_snapshot_and_replays_only_newer_faces(redis_server, redis_client,
                                                                        start_shard, rng):
    shard = start_shard(0, 1, FACE_IVF_FROM=40)  # past 40 faces the shard is an IVF index
    index = tier_index(redis_server, [shard.url])
    for number in range(60):
        index.add_image_faces(sha(f"old{number}"), [photo_of(person(300_000 + number), rng)])
    shard.stop()  # SIGTERM: the snapshot is saved
    assert "snapshot saved, 60 faces" in shard.output()
    for number in range(5):
        FaceIndex(redis_client).add_image_faces(sha(f"new{number}"), [photo_of(person(400_000 + number), rng)])
    erase_faces(redis_client, sha("old7"))

    shard = start_shard(0, 1, FACE_IVF_FROM=40)
    index = tier_index(redis_server, [shard.url])

    assert "60 faces from the snapshot" in shard.output()
    assert "5 faces loaded from Redis" in shard.output()  # not 64
    assert [other for other, _ in index.match_encodings([person(400_003)])] == [sha("new3")]
    assert [other for other, _ in index.match_encodings([person(300_011)])] == [sha("old11")]
    assert index.match_encodings([person(300_007)]) == []
    assert get_json(f"{shard.url}/readyz")[1]["faces"] == 64


def test_erased_faces_leave_the_tier(redis_server, redis_client, start_shard, rng):
    shards = [start_shard(0, 2), start_shard(1, 2)]
    index = tier_index(redis_server, [s.url for s in shards])
    alice = person(1)
    index.add_image_faces(sha("alice1"), [photo_of(alice, rng)])
    index.add_image_faces(sha("alice2"), [photo_of(alice, rng)])
    assert {other for other, _ in index.match_encodings([alice])} == {sha("alice1"), sha("alice2")}

    assert erase_faces(redis_client, sha("alice1")) == 1

    assert [other for other, _ in index.match_encodings([alice])] == [sha("alice2")]
    assert erase_faces(redis_client, sha("alice1")) == 0  # nothing left to erase


class ErasedWhileStoring(InProcessFaceSearch):
    """The erasure's tombstone lands just after the faces are stored, before the face list is."""

    def add(self, sha256, encodings):
        ids = super().add(sha256, encodings)
        self.store.redis.set(keys.erased(sha256), "1")
        return ids


@pytest.mark.parametrize("moment", ["before", "while"])
def test_a_face_stored_as_its_image_is_erased_goes_again(moment, redis_client, rng):
    if moment == "before":
        redis_client.set(keys.erased(sha("late")), "1")  # the erasure's tombstone is already in place
        index = FaceIndex(redis_client)
    else:
        index = FaceIndex(redis_client, search=ErasedWhileStoring(FaceStore(redis_client)))

    assert index.add_image_faces(sha("late"), [photo_of(person(1), rng)]) == []

    assert faces_for(redis_client, sha("late")) is None
    assert redis_client.hlen(keys.face_partition(partition_of_owner(sha("late"))).records) == 0
    assert index.match_encodings([person(1)]) == []


def test_a_shard_that_does_not_answer_is_storage_unavailable(redis_server, start_shard, rng):
    shards = [start_shard(0, 2), start_shard(1, 2)]
    only_one = tier_index(redis_server, [shards[0].url])
    with pytest.raises(FaceSearchUnavailable, match="FACE_TIER_URLS"):
        only_one.match_encodings([person(1)])
    both = tier_index(redis_server, [s.url for s in shards])
    shards[1].stop()
    with pytest.raises(redis.ConnectionError):  # what the worker already retries with back-off
        both.match_encodings([person(1)])


@pytest.mark.parametrize("body", [b"{}", b"not json", b'{"encodings": [[1, 2]], "tolerance": 0.5}',
                                  b'{"encodings": [], "tolerance": 5}'])
def test_a_bad_query_gets_a_400_json_error(start_shard, body):
    shard = start_shard(0, 1)
    request = urllib.request.Request(f"{shard.url}/search", data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    assert error.value.code == 400
    assert "error" in json.loads(error.value.read())


def test_a_shard_index_restores_its_snapshot_and_catches_up(redis_client, tmp_path, rng):
    """In-process: what the shard process does at start, with the counts visible."""
    writer = FaceIndex(redis_client)
    for number in range(30):
        writer.add_image_faces(sha(f"s{number}"), [photo_of(person(500_000 + number), rng)])
    store = FaceStore(redis_client)
    first = ShardIndex(store, range(PARTITIONS), ShardVectors(ivf_from=20))
    assert first.catch_up() == 30
    first.save(tmp_path)
    writer.add_image_faces(sha("after"), [photo_of(person(600_000), rng)])

    second = ShardIndex(store, range(PARTITIONS), ShardVectors(ivf_from=20))
    assert second.restore(tmp_path)
    assert len(second) == 30 and second.vectors.vectors.kind == "ivf"
    assert second.catch_up() == 1
    assert list(second.search([person(600_000)], 0.54)) == [sha("after")]
    assert not ShardIndex(store, [0, 1], ShardVectors()).restore(tmp_path)  # other partitions: start empty

    (tmp_path / "snapshot" / "ivf.faiss").write_bytes(b"damaged")
    damaged = ShardIndex(store, range(PARTITIONS), ShardVectors(ivf_from=20))
    assert not damaged.restore(tmp_path)  # Redis has every face: start empty, load them all
    assert damaged.catch_up() == 31


@pytest.fixture
def rng():
    return np.random.default_rng(17)


def test_searches_from_many_threads_share_one_shard(redis_server, redis_client, start_shard, rng):
    shard = start_shard(0, 1)
    index = tier_index(redis_server, [shard.url])
    index.add_image_faces(sha("bob"), [photo_of(person(2), rng)])
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(index.match_encodings([person(2)])))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [[other for other, _ in answer] for answer in answers] == [[sha("bob")]] * 8
