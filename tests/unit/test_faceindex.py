"""The in-memory part of the face index: EncodingMatrix and the encoding format (no Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from imagescan.faceindex import ENCODING_SIZE, EncodingMatrix, encoding_from_bytes, encoding_to_bytes


def random_encodings(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.09, size=(count, ENCODING_SIZE)).astype(np.float32)


def brute_force(encodings, owners, queries, tolerance, exclude=None) -> dict[str, float]:
    best: dict[str, float] = {}
    for query in np.atleast_2d(queries):
        distances = np.linalg.norm(encodings.astype(np.float64) - query.astype(np.float64), axis=1)
        for owner, distance in zip(owners, distances):
            if distance <= tolerance and owner != exclude and distance < best.get(owner, np.inf):
                best[owner] = float(distance)
    return best


def test_empty_matrix_matches_nothing():
    assert EncodingMatrix().within(random_encodings(1)[0], 0.6) == {}


def test_range_query_agrees_with_brute_force():
    encodings = random_encodings(3000)
    owners = [f"img{row // 3}" for row in range(len(encodings))]
    rng = np.random.default_rng(1)
    queries = encodings[[5, 700, 2999]] + rng.normal(scale=0.03, size=(3, ENCODING_SIZE)).astype(np.float32)
    matrix = EncodingMatrix(capacity=4)
    matrix.append(encodings, owners)

    for tolerance in (0.3, 0.6, 1.3):
        expected = brute_force(encodings, owners, queries, tolerance, exclude="img1")
        found = matrix.within(queries, tolerance, exclude_owner="img1")
        assert found.keys() == expected.keys()
        for owner, distance in expected.items():
            assert found[owner] == pytest.approx(distance, abs=1e-9)


def test_tolerance_is_inclusive():
    origin = np.zeros(ENCODING_SIZE, dtype=np.float32)
    at_boundary = origin.copy()
    at_boundary[0] = 0.5  # exactly representable
    matrix = EncodingMatrix()
    matrix.append(np.stack([at_boundary]), ["edge"])
    assert matrix.within(origin, 0.5) == {"edge": 0.5}
    assert matrix.within(origin, 0.4999) == {}


def test_best_distance_per_owner_over_all_queries_and_faces():
    base = random_encodings(1, seed=3)[0]
    offsets = np.zeros((2, ENCODING_SIZE), dtype=np.float32)
    offsets[0, 0], offsets[1, 0] = 0.2, 0.1
    matrix = EncodingMatrix()
    matrix.append(base + offsets, ["group", "group"])
    far_query = base + 0.5 * np.eye(ENCODING_SIZE, dtype=np.float32)[1]
    found = matrix.within(np.stack([far_query, base]), 0.6)
    assert found == {"group": pytest.approx(0.1, abs=1e-6)}


def test_excluded_owner_is_never_returned():
    encodings = random_encodings(4)
    matrix = EncodingMatrix()
    matrix.append(encodings, ["self", "self", "other", "self"])
    assert set(matrix.within(encodings[0], 5.0, exclude_owner="self")) == {"other"}
    assert set(matrix.within(encodings[0], 5.0, exclude_owner="unknown")) == {"self", "other"}


def test_growth_keeps_every_row_in_order():
    encodings = random_encodings(1000, seed=5)
    matrix = EncodingMatrix(capacity=1)
    for start in range(0, 1000, 7):
        matrix.append(encodings[start : start + 7], [f"o{row}" for row in range(start, min(start + 7, 1000))])
    assert len(matrix) == 1000
    for row in (0, 1, 511, 512, 999):
        assert matrix.within(encodings[row], 1e-6) == {f"o{row}": 0.0}


def test_append_needs_one_owner_per_encoding():
    with pytest.raises(ValueError):
        EncodingMatrix().append(random_encodings(2), ["only-one"])


def test_encoding_bytes_round_trip_as_512_little_endian_float32():
    encoding = random_encodings(1)[0]
    data = encoding_to_bytes(tuple(encoding.tolist()))
    assert len(data) == 512
    assert data[:4] == np.float32(encoding[0]).astype("<f4").tobytes()
    np.testing.assert_array_equal(encoding_from_bytes(data), encoding)


@pytest.mark.parametrize("bad", [[0.1] * 127, [0.1] * 129, [float("nan")] + [0.0] * 127])
def test_malformed_encodings_are_rejected(bad):
    with pytest.raises(ValueError):
        encoding_to_bytes(bad)
