"""Upgrading a Redis written with the key names before hash tags and shards (imagescan.migrate)."""

from __future__ import annotations

import json

import numpy as np

from imagescan import keys, migrate
from imagescan.digests import Digests
from imagescan.faceindex import faces_for, matches_by_face
from imagescan.facematrix import encoding_to_bytes
from imagescan.facestore import FaceStore
from imagescan.store import ImageStore
from tests.imagefactory import jpeg

PLATE = "BA123CD"


def _old_layout(redis_client, digests: Digests) -> None:
    """One analysed image with a plate, as the previous release wrote it (names spelled out)."""
    sha = digests.sha256
    redis_client.hset(f"img:{sha}", mapping={
        "sha256": sha, "md5": digests.md5, "sha224": digests.sha224, "size": 10, "status": "done",
        "received_at": "2026-11-30T10:00:00Z", "format": "JPEG",
        "analysis": json.dumps({"plates": [{"plate": PLATE, "confidence": 0.9}]}),
    })
    redis_client.zadd(f"img:{sha}:names", {"car.jpg": 1})
    redis_client.set(f"alias:{digests.md5}", sha)
    redis_client.set(f"alias:{digests.sha224}", sha)
    redis_client.sadd(f"plate:{PLATE}", sha)
    redis_client.sadd("plates", PLATE)
    redis_client.hset("plate:fz:7", "X", PLATE)
    redis_client.zadd("images:recent", {sha: 1_764_496_800.0})
    redis_client.set("stats:uploads:2026-11-30", 1)
    redis_client.zadd("stats:formats", {"JPEG": 1})
    redis_client.set(f"attempts:analyze:{sha}", 1, ex=3600)
    redis_client.set(f"thumb:{sha}:128", b"jpeg")


def test_the_migration_renames_splits_and_is_idempotent(redis_client):
    redis_client.flushdb()  # only this old layout: what an earlier test left would count too
    digests = Digests.of(jpeg(seed=1))
    _old_layout(redis_client, digests)
    store = ImageStore(redis_client)
    assert store.resolve(digests.md5) is None  # the old names are not read

    assert migrate.migrate(redis_client, dry_run=True)["plates to file in the fuzzy index"] == 1
    done = migrate.migrate(redis_client)
    assert done["renamed"] == 9 and done["caches dropped"] == 1 and done["listed images"] == 1

    assert store.resolve(digests.md5) == store.resolve(digests.sha256) == digests.sha256
    assert store.analysis(digests.sha256)["names"] == ["car.jpg"]
    assert store.images_with_plate(PLATE) == [digests.sha256]
    assert store.known_plates() == [PLATE]
    assert store.uploads_per_day(today=None, days=3650) == {"2026-11-30": 1}
    assert store.top_formats() == [("JPEG", 1)]
    untagged = {k.decode() for k in redis_client.scan_iter() if b"{" not in k}
    assert untagged == {keys.plate_pairs_filed()}  # nothing left under an old name
    assert done["plates filed in the fuzzy index"] == 1
    assert store.plates_near("BA12CD", 2) == [(PLATE, 1)]
    assert store.plates_near("A12CD", 2) == [(PLATE, 2)]  # through the pair forms filed
    assert 0 < redis_client.ttl(keys.work_attempts("analyze", digests.sha256)) <= 3600

    assert migrate.migrate(redis_client) == {}  # a second run changes nothing


def _old_faces(redis_client, owners: dict[str, list[int]]) -> dict[int, np.ndarray]:
    """The previous release's one face index: ids from one counter, encodings and owners in two
    hashes, each image's face list naming those ids."""
    encodings = {}
    for number, (sha, ids) in enumerate(owners.items()):
        redis_client.hset(f"img:{sha}", mapping={"sha256": sha, "status": "done"})
        for face in ids:
            encodings[face] = np.full(128, 0.01 * number, dtype=np.float32) + np.float32(face) * 1e-4
            redis_client.hset("face:enc", face, encoding_to_bytes(encodings[face]))
            redis_client.hset("face:owner", face, sha)
        redis_client.set(f"img:{sha}:faces", json.dumps([{"id": f, "box": {"top": f}} for f in ids]))
    first, second = list(owners)[:2]
    redis_client.zadd(f"img:{first}:matches", {second: 0.1})
    redis_client.set("face:seq", max(max(ids) for ids in owners.values()))
    redis_client.set("face:erased:seq", 1)
    redis_client.zadd("face:erased", {"99": 1})
    return encodings


def test_the_migration_files_the_old_faces_into_the_partitions(redis_client):
    redis_client.flushdb()
    first, second, erased = (Digests.of(jpeg(seed=n)).sha256 for n in (2, 3, 4))
    encodings = _old_faces(redis_client, {first: [1, 2], second: [3]})
    redis_client.hset("face:enc", 4, encoding_to_bytes(np.zeros(128)))
    redis_client.hset("face:owner", 4, erased)  # its image is gone: the face must not come back

    done = migrate.migrate(redis_client)
    assert done["faces filed in partitions"] == 4

    for sha, old_ids in ((first, [1, 2]), (second, [3])):
        listed = faces_for(redis_client, sha)
        assert [face["box"] for face in listed] == [{"top": f} for f in old_ids]  # same faces, same order
        stored = FaceStore(redis_client).encodings([face["id"] for face in listed])
        for face, old in zip(listed, old_ids):
            np.testing.assert_array_equal(stored[face["id"]], encodings[old])
    described = matches_by_face(redis_client, first, tolerance=1.0)  # reads the new ids' encodings
    assert [[m["sha256"] for m in face["matches"]] for face in described] == [[second], [second]]
    assert FaceStore(redis_client).encodings([f["id"] for f in faces_for(redis_client, second)])
    assert not any(redis_client.exists(key) for key in keys.LEGACY_FACE_KEYS)
    assert {k for k in redis_client.scan_iter() if b"{" not in k} == {keys.plate_pairs_filed().encode()}
    assert migrate.migrate(redis_client) == {}  # a second run changes nothing
