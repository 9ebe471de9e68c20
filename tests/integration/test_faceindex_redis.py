"""FaceIndex against a real Redis server (pytest-redis starts redis-server)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from imagescan import keys
from imagescan.analyzers import Box, FaceFound
from imagescan.faceindex import FaceIndex, faces_for, matches_for


def person(seed: int) -> np.ndarray:
    """A synthetic identity: a random unit-ish vector; two different seeds are ~1.4 apart."""
    vector = np.random.default_rng(seed).normal(size=128)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def photo_of(identity: np.ndarray, rng: np.random.Generator, spread: float = 0.02) -> FaceFound:
    """Another photo of the same person: a small perturbation (distance about spread*sqrt(128))."""
    encoding = identity + rng.normal(scale=spread, size=128).astype(np.float32)
    return FaceFound(box=Box(10, 20, 30, 40), encoding=tuple(encoding.tolist()))


def sha(label: str) -> str:
    return (label.encode().hex() * 64)[:64]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_same_person_matches_both_ways(redisdb, rng):
    index = FaceIndex(redisdb)
    alice = person(1)
    assert index.add_image_faces(sha("a1"), [photo_of(alice, rng)]) == []

    found = index.add_image_faces(sha("a2"), [photo_of(alice, rng)])

    assert [other for other, _ in found] == [sha("a1")]
    assert 0 < found[0][1] <= 0.6
    assert matches_for(redisdb, sha("a2")) == [(sha("a1"), pytest.approx(found[0][1]))]
    assert matches_for(redisdb, sha("a1")) == [(sha("a2"), pytest.approx(found[0][1]))]


def test_different_people_do_not_match(redisdb, rng):
    index = FaceIndex(redisdb)
    index.add_image_faces(sha("alice"), [photo_of(person(1), rng)])

    assert index.add_image_faces(sha("bob"), [photo_of(person(2), rng)]) == []
    assert matches_for(redisdb, sha("alice")) == []
    assert matches_for(redisdb, sha("bob")) == []


def test_tolerance_is_inclusive_and_configurable(redisdb):
    base = person(3)
    direction = person(4) - base * float(person(4) @ base)
    direction /= np.linalg.norm(direction)
    near = FaceFound(box=Box(0, 0, 1, 1), encoding=tuple((base + 0.5 * direction).tolist()))
    far = FaceFound(box=Box(0, 0, 1, 1), encoding=tuple((base + 0.7 * direction).tolist()))
    origin = FaceFound(box=Box(0, 0, 1, 1), encoding=tuple(base.tolist()))
    index = FaceIndex(redisdb, tolerance=0.6)
    index.add_image_faces(sha("origin"), [origin])

    assert [other for other, _ in index.add_image_faces(sha("near"), [near])] == [sha("origin")]
    assert [other for other, _ in index.add_image_faces(sha("far"), [far])] == [sha("near")]  # 0.2 from near

    strict = FaceIndex(redisdb, tolerance=0.1)
    assert strict.match_encodings([base], exclude=sha("origin")) == []


def test_image_with_two_faces_matches_both_people(redisdb, rng):
    index = FaceIndex(redisdb)
    alice, bob, carol = person(1), person(2), person(3)
    index.add_image_faces(sha("alice"), [photo_of(alice, rng)])
    index.add_image_faces(sha("bob"), [photo_of(bob, rng)])
    index.add_image_faces(sha("carol"), [photo_of(carol, rng)])

    found = index.add_image_faces(sha("group"), [photo_of(alice, rng), photo_of(bob, rng)])

    assert sorted(other for other, _ in found) == sorted([sha("alice"), sha("bob")])
    assert [other for other, _ in matches_for(redisdb, sha("alice"))] == [sha("group")]
    assert [other for other, _ in matches_for(redisdb, sha("bob"))] == [sha("group")]
    assert matches_for(redisdb, sha("carol")) == []
    assert len(faces_for(redisdb, sha("group"))) == 2


def test_own_faces_never_match_their_image(redisdb, rng):
    index = FaceIndex(redisdb)
    twin = person(5)
    # two nearly identical faces in one picture (a mirror, a poster) are not "another image"
    assert index.add_image_faces(sha("mirror"), [photo_of(twin, rng), photo_of(twin, rng)]) == []
    assert matches_for(redisdb, sha("mirror")) == []


def test_reprocessing_an_image_adds_no_face(redisdb, rng):
    index = FaceIndex(redisdb)
    alice = person(1)
    index.add_image_faces(sha("a1"), [photo_of(alice, rng)])
    faces = [photo_of(alice, rng)]
    first = index.add_image_faces(sha("a2"), faces)
    stored = faces_for(redisdb, sha("a2"))

    again = FaceIndex(redisdb).add_image_faces(sha("a2"), faces)  # redelivered to another worker

    assert again == first
    assert faces_for(redisdb, sha("a2")) == stored
    assert int(redisdb.get(keys.face_seq())) == 2
    assert redisdb.hlen(keys.face_encodings()) == 2
    assert redisdb.zcard(keys.image_matches(sha("a1"))) == 1


def test_image_without_faces_is_recorded_and_matches_nothing(redisdb):
    index = FaceIndex(redisdb)
    assert index.add_image_faces(sha("landscape"), []) == []
    assert faces_for(redisdb, sha("landscape")) == []
    assert faces_for(redisdb, sha("never-seen")) is None
    assert matches_for(redisdb, sha("never-seen")) == []


def test_faces_stored_with_ids_boxes_and_float32_bytes(redisdb, rng):
    index = FaceIndex(redisdb)
    face = photo_of(person(1), rng)
    index.add_image_faces(sha("a"), [face])

    [stored] = faces_for(redisdb, sha("a"))
    assert stored["box"] == {"x": 10, "y": 20, "w": 30, "h": 40}
    raw = redisdb.hget(keys.face_encodings(), stored["id"])
    assert len(raw) == 512
    np.testing.assert_array_equal(
        np.frombuffer(raw, dtype="<f4"), np.asarray(face.encoding, dtype=np.float32)
    )
    assert redisdb.hget(keys.face_owner(), stored["id"]).decode() == sha("a")


def test_new_index_rebuilds_its_matrix_from_redis(redisdb, rng):
    writer = FaceIndex(redisdb)
    for number in range(5):
        writer.add_image_faces(sha(f"p{number}"), [photo_of(person(number), rng)])

    reader = FaceIndex(redisdb)
    assert reader.sync() == 5
    assert reader.sync() == 0
    assert [other for other, _ in reader.match_encodings([person(3)])] == [sha("p3")]


def test_index_sees_faces_added_by_another_worker(redisdb, rng):
    first, second = FaceIndex(redisdb), FaceIndex(redisdb)
    first.sync()
    alice = person(1)
    second.add_image_faces(sha("a1"), [photo_of(alice, rng)])

    assert [other for other, _ in first.add_image_faces(sha("a2"), [photo_of(alice, rng)])] == [sha("a1")]


def test_matrix_grows_past_its_initial_capacity(redisdb, rng):
    index = FaceIndex(redisdb)
    for number in range(1100):
        index.add_image_faces(sha(f"n{number}"), [photo_of(person(10_000 + number), rng)])
    assert len(index) == 1100
    assert [other for other, _ in index.match_encodings([person(10_000 + 1099)])] == [sha("n1099")]


def add_at_the_same_moment(workers, images, faces) -> list:
    """Each worker adds its image from its own thread, released together by a barrier."""
    start = threading.Barrier(len(workers))
    results: list = [None] * len(workers)

    def work(slot: int) -> None:
        start.wait()
        results[slot] = workers[slot].add_image_faces(images[slot], [faces[slot]])

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_simultaneous_workers_always_match_each_other(redis_proc, rng):
    """Two FaceIndex instances (separate matrices and connections, as in two worker processes)
    add photos of one person at the same moment, many times; each pair must match both ways."""
    import redis as redis_client

    def connect():
        return redis_client.Redis(host=redis_proc.host, port=redis_proc.port, db=1)

    connect().flushdb()
    workers = [FaceIndex(connect()), FaceIndex(connect())]
    for worker in workers:
        worker.sync()
    rounds = 150
    for round_number in range(rounds):
        identity = person(100_000 + round_number)
        images = [sha(f"r{round_number}w0"), sha(f"r{round_number}w1")]
        faces = [photo_of(identity, rng), photo_of(identity, rng)]
        results = add_at_the_same_moment(workers, images, faces)

        # the worker whose face got the higher id must have seen the other one
        seen_by_either = {other for result in results for other, _ in result}
        assert seen_by_either and seen_by_either <= set(images), f"round {round_number}: {results}"
        reader = connect()
        assert [other for other, _ in matches_for(reader, images[0])] == [images[1]]
        assert [other for other, _ in matches_for(reader, images[1])] == [images[0]]
    connect().flushdb()
