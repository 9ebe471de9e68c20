"""A shard's vectors: exact and IVF answer alike, survive a save, forget erased faces; the
partitions of the tier's shards; the tier's query validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facetier.__main__ import search_request
from imagescan.facesearch import shard_partitions
from imagescan.facestore import PARTITIONS, face_id, partition_of_face, partition_of_owner
from imagescan.facevectors import ExactVectors, IvfVectors, ShardVectors


def clustered(count: int, seed: int = 1) -> tuple[np.ndarray, list[str], list[int]]:
    """Four photos per identity, identities ~0.88 apart, photos ~0.35 apart (as dlib's)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.055, size=(count // 4, 128))
    rows = np.repeat(centres, 4, axis=0) + rng.normal(scale=0.022, size=(count, 128))
    owners = [f"{number:064x}" for number in range(count)]
    return rows.astype(np.float32), owners, [face_id(number % PARTITIONS, number) for number in range(count)]


def test_ivf_finds_what_exact_search_finds_with_the_same_distances():
    rows, owners, ids = clustered(4000)
    exact = ExactVectors()
    exact.add(rows, owners, ids)
    ivf = IvfVectors.trained_on(rows, lists=16, probes=16)  # every list probed: nothing missed
    ivf.add(rows, owners, ids)
    for query in rows[:40] + 0.01:
        expected, found = exact.within(query, 0.54), ivf.within(query, 0.54)
        assert found.keys() == expected.keys() and len(found) >= 4
        assert all(found[o] == pytest.approx(expected[o], abs=1e-5) for o in found)


def test_ivf_excludes_the_asking_image_and_forgets_erased_faces(tmp_path):
    rows, owners, ids = clustered(400)
    ivf = IvfVectors.trained_on(rows, lists=4, probes=4)
    ivf.add(rows, owners, ids)
    assert owners[0] not in ivf.within(rows[0], 0.54, exclude_owner=owners[0])
    assert ivf.remove([ids[1], ids[2]]) == 2 and len(ivf) == 398
    assert set(ivf.within(rows[1], 0.54)) == {owners[0], owners[3]}

    ivf.save(tmp_path)
    loaded = IvfVectors.load(tmp_path, probes=4)
    assert len(loaded) == 398 and loaded.within(rows[1], 0.54) == ivf.within(rows[1], 0.54)
    assert sorted(loaded.face_ids_held().tolist()) == sorted(set(ids) - {ids[1], ids[2]})


def test_a_shard_moves_to_ivf_at_its_threshold_and_saves_either_kind(tmp_path):
    rows, owners, ids = clustered(800)
    vectors = ShardVectors(ivf_from=600, probes=64, lists=8)
    vectors.add(rows[:500], owners[:500], ids[:500])
    assert vectors.vectors.kind == "exact"
    vectors.save(tmp_path)
    vectors.add(rows[500:], owners[500:], ids[500:])
    assert vectors.vectors.kind == "ivf" and len(vectors) == 800
    assert set(vectors.within(rows[700], 0.54)) == {owners[n] for n in range(700, 704)}

    earlier = ShardVectors()
    earlier.load(tmp_path)
    assert earlier.vectors.kind == "exact" and len(earlier) == 500


def test_shards_hold_every_partition_exactly_once():
    for shards in (1, 2, 3, 7, PARTITIONS):
        held = [p for shard in range(shards) for p in shard_partitions(shard, shards)]
        assert sorted(held) == list(range(PARTITIONS))
    with pytest.raises(ValueError):
        shard_partitions(2, 2)
    with pytest.raises(ValueError):
        shard_partitions(0, PARTITIONS + 1)


def test_a_face_id_names_its_partition():
    assert partition_of_face(face_id(13, 9)) == 13
    assert partition_of_owner("ff" * 32) == int("ffffffff", 16) % PARTITIONS


@pytest.mark.parametrize("body, problem", [
    (b"[]", "AttributeError"),
    (b'{"encodings": [[0.1]], "tolerance": 0.5}', "128 numbers"),
    (b'{"encodings": [], "tolerance": 0}', "tolerance"),
    (b'{"encodings": [], "tolerance": 0.5, "exclude": "../x"}', "SHA-256"),
    (b'{"encodings": [[' + b",".join([b'"a"'] * 128) + b']], "tolerance": 0.5}', "finite numbers"),
    (b'{"encodings": [[' + b",".join([b"NaN"] * 128) + b']], "tolerance": 0.5}', "finite numbers"),
])
def test_the_tier_refuses_a_malformed_query(body, problem):
    with pytest.raises((ValueError, AttributeError)) as error:
        search_request(body)
    assert problem in f"{type(error.value).__name__} {error.value}"


def test_the_tier_reads_a_good_query():
    body = json.dumps({"encodings": [[0.5] * 128], "tolerance": 0.54, "exclude": None}).encode()
    encodings, tolerance, exclude = search_request(body)
    assert len(encodings) == 1 and tolerance == 0.54 and exclude is None
