"""FaceIndex against a real Redis server (the pytest-redis fixtures of tests/conftest.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import redis

from imagescan import keys
from imagescan.analyzers import Box, FaceFound
from imagescan.faceindex import FaceIndex, faces_for, matches_for
from imagescan.facestore import PARTITIONS, RECORD_SIZE, partition_of_face


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


def faces_in_redis(client) -> tuple[int, int]:
    """(face numbers handed out, face records stored) over every partition."""
    handed_out = sum(int(client.hget(keys.face_partition(p).state, "seq") or 0) for p in range(PARTITIONS))
    return handed_out, sum(client.hlen(keys.face_partition(p).records) for p in range(PARTITIONS))


def record_of(client, face_id: int) -> bytes | None:
    return client.hget(keys.face_partition(partition_of_face(face_id)).records, face_id)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_same_person_matches_both_ways(redis_client, rng):
    index = FaceIndex(redis_client)
    alice = person(1)
    assert index.add_image_faces(sha("a1"), [photo_of(alice, rng)]) == []

    found = index.add_image_faces(sha("a2"), [photo_of(alice, rng)])

    assert [other for other, _ in found] == [sha("a1")]
    assert 0 < found[0][1] <= 0.6
    assert matches_for(redis_client, sha("a2")) == [(sha("a1"), pytest.approx(found[0][1]))]
    assert matches_for(redis_client, sha("a1")) == [(sha("a2"), pytest.approx(found[0][1]))]


def test_different_people_do_not_match(redis_client, rng):
    index = FaceIndex(redis_client)
    index.add_image_faces(sha("alice"), [photo_of(person(1), rng)])

    assert index.add_image_faces(sha("bob"), [photo_of(person(2), rng)]) == []
    assert matches_for(redis_client, sha("alice")) == []
    assert matches_for(redis_client, sha("bob")) == []


def test_tolerance_is_inclusive_and_configurable(redis_client):
    base = person(3)
    direction = person(4) - base * float(person(4) @ base)
    direction /= np.linalg.norm(direction)
    near = FaceFound(box=Box(0, 0, 1, 1), encoding=tuple((base + 0.5 * direction).tolist()))
    far = FaceFound(box=Box(0, 0, 1, 1), encoding=tuple((base + 0.7 * direction).tolist()))
    origin = FaceFound(box=Box(0, 0, 1, 1), encoding=tuple(base.tolist()))
    index = FaceIndex(redis_client, tolerance=0.6)
    index.add_image_faces(sha("origin"), [origin])

    assert [other for other, _ in index.add_image_faces(sha("near"), [near])] == [sha("origin")]
    assert [other for other, _ in index.add_image_faces(sha("far"), [far])] == [sha("near")]  # 0.2 from near

    strict = FaceIndex(redis_client, tolerance=0.1)
    assert strict.match_encodings([base], exclude=sha("origin")) == []


def test_image_with_two_faces_matches_both_people(redis_client, rng):
    index = FaceIndex(redis_client)
    alice, bob, carol = person(1), person(2), person(3)
    index.add_image_faces(sha("alice"), [photo_of(alice, rng)])
    index.add_image_faces(sha("bob"), [photo_of(bob, rng)])
    index.add_image_faces(sha("carol"), [photo_of(carol, rng)])

    found = index.add_image_faces(sha("group"), [photo_of(alice, rng), photo_of(bob, rng)])

    assert sorted(other for other, _ in found) == sorted([sha("alice"), sha("bob")])
    assert [other for other, _ in matches_for(redis_client, sha("alice"))] == [sha("group")]
    assert [other for other, _ in matches_for(redis_client, sha("bob"))] == [sha("group")]
    assert matches_for(redis_client, sha("carol")) == []
    assert len(faces_for(redis_client, sha("group"))) == 2


def test_own_faces_never_match_their_image(redis_client, rng):
    index = FaceIndex(redis_client)
    twin = person(5)
    # two nearly identical faces in one picture (a mirror, a poster) are not "another image"
    assert index.add_image_faces(sha("mirror"), [photo_of(twin, rng), photo_of(twin, rng)]) == []
    assert matches_for(redis_client, sha("mirror")) == []


def test_reprocessing_an_image_adds_no_face(redis_client, rng):
    index = FaceIndex(redis_client)
    alice = person(1)
    index.add_image_faces(sha("a1"), [photo_of(alice, rng)])
    faces = [photo_of(alice, rng)]
    first = index.add_image_faces(sha("a2"), faces)
    stored = faces_for(redis_client, sha("a2"))

    again = FaceIndex(redis_client).add_image_faces(sha("a2"), faces)  # redelivered to another worker

    assert again == first
    assert faces_for(redis_client, sha("a2")) == stored
    assert faces_in_redis(redis_client) == (2, 2)
    assert redis_client.zcard(keys.image_matches(sha("a1"))) == 1


def test_image_without_faces_is_recorded_and_matches_nothing(redis_client):
    index = FaceIndex(redis_client)
    assert index.add_image_faces(sha("landscape"), []) == []
    assert faces_for(redis_client, sha("landscape")) == []
    assert faces_for(redis_client, sha("never-seen")) is None
    assert matches_for(redis_client, sha("never-seen")) == []


def test_faces_stored_with_ids_boxes_and_float32_bytes(redis_client, rng):
    index = FaceIndex(redis_client)
    face = photo_of(person(1), rng)
    index.add_image_faces(sha("a"), [face])

    [stored] = faces_for(redis_client, sha("a"))
    assert stored["box"] == {"x": 10, "y": 20, "w": 30, "h": 40}
    raw = record_of(redis_client, stored["id"])
    assert len(raw) == RECORD_SIZE == 64 + 512
    np.testing.assert_array_equal(
        np.frombuffer(raw[64:], dtype="<f4"), np.asarray(face.encoding, dtype=np.float32)
    )
    assert raw[:64].decode() == sha("a")


def test_new_index_rebuilds_its_matrix_from_redis(redis_client, rng):
    writer = FaceIndex(redis_client)
    for number in range(5):
        writer.add_image_faces(sha(f"p{number}"), [photo_of(person(number), rng)])

    reader = FaceIndex(redis_client)
    assert reader.sync() == 5
    assert reader.sync() == 0
    assert [other for other, _ in reader.match_encodings([person(3)])] == [sha("p3")]


def test_index_sees_faces_added_by_another_worker(redis_client, rng):
    first, second = FaceIndex(redis_client), FaceIndex(redis_client)
    first.sync()
    alice = person(1)
    second.add_image_faces(sha("a1"), [photo_of(alice, rng)])

    assert [other for other, _ in first.add_image_faces(sha("a2"), [photo_of(alice, rng)])] == [sha("a1")]


def test_matrix_grows_past_its_initial_capacity(redis_client, rng):
    index = FaceIndex(redis_client)
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


def test_simultaneous_workers_always_match_each_other(redis_server, rng):
    """Two FaceIndex instances (separate matrices and connections, as in two worker processes)
    add photos of one person at the same moment, many times; each pair must match both ways."""

    def connect():
        return redis.Redis(host=redis_server.host, port=redis_server.port, db=1)

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


def test_sync_skips_faces_removed_from_redis(redis_client, rng):
    writer = FaceIndex(redis_client)
    for number in range(3):
        writer.add_image_faces(sha(f"d{number}"), [photo_of(person(number), rng)])
    [lost] = faces_for(redis_client, sha("d2"))
    redis_client.hdel(keys.face_partition(partition_of_face(lost["id"])).records, lost["id"])

    reader = FaceIndex(redis_client)
    assert reader.sync() == 2
    assert reader.match_encodings([person(2)]) == []
    assert [other for other, _ in reader.match_encodings([person(1)])] == [sha("d1")]


def test_a_decoding_client_is_refused(redis_server):
    with pytest.raises(ValueError, match="decode_responses"):
        FaceIndex(redis.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True))


def test_a_face_marked_not_matchable_is_listed_but_never_matched(redis_client, rng):
    from imagescan.faceindex import matches_by_face

    index = FaceIndex(redis_client)
    alice = person(1)
    index.add_image_faces(sha("clear"), [photo_of(alice, rng)])
    blurred = FaceFound(box=Box(1, 2, 3, 4), encoding=photo_of(alice, rng).encoding, matchable=False)

    assert index.add_image_faces(sha("blurred"), [blurred, photo_of(person(2), rng)]) == []
    assert index.add_image_faces(sha("later"), [photo_of(alice, rng)]) == [(sha("clear"), pytest.approx(0.32, abs=0.1))]
    listed = faces_for(redis_client, sha("blurred"))
    assert listed[0]["matchable"] is False and listed[0]["box"] == {"x": 1, "y": 2, "w": 3, "h": 4}
    assert "matchable" not in listed[1]
    described = matches_by_face(redis_client, sha("blurred"))
    assert described[0]["matchable"] is False and described[0]["matches"] == []


def test_matches_carry_a_confidence_that_falls_with_distance(redis_client, rng):
    from imagescan.faceindex import matches_by_face

    index = FaceIndex(redis_client)
    alice = person(1)
    index.add_image_faces(sha("a1"), [photo_of(alice, rng, spread=0.01)])
    index.add_image_faces(sha("a2"), [photo_of(alice, rng, spread=0.03)])
    index.add_image_faces(sha("a3"), [photo_of(alice, rng, spread=0.01)])

    [face] = matches_by_face(redis_client, sha("a1"))
    distances = [match["distance"] for match in face["matches"]]
    confidences = [match["confidence"] for match in face["matches"]]
    assert len(confidences) == 2 and distances == sorted(distances)
    assert all(0.0 <= value <= 1.0 for value in confidences)
    assert confidences == sorted(confidences, reverse=True)
