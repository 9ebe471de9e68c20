"""Plate text helpers: normalisation and the lookalike-tolerant fuzzy match."""

from __future__ import annotations

import pytest

from imagescan.platetext import (
    lookalike_distance,
    lookalike_key,
    normalize_plate,
    rank_matches,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("789-SJL", "789SJL"),
        ("789 sjl", "789SJL"),
        ("PJJ·4955", "PJJ4955"),
        ("  ab-12_c. ", "AB12C"),
        ("Ö-1", "1"),  # only ASCII letters are plate characters
        ("", ""),
    ],
)
def test_normalize_plate_keeps_upper_case_letters_and_digits(raw, normalised):
    assert normalize_plate(raw) == normalised


def test_identical_plates_are_at_distance_zero_whatever_the_punctuation():
    assert lookalike_distance("789-SJL", "789sjl") == 0


@pytest.mark.parametrize(
    ("query", "plate"),
    [
        ("7B9SJL", "789SJL"),
        ("O12ABC", "012ABC"),
        ("AB1C", "ABIC"),
        ("S55", "555"),
        ("Z26", "226"),
        ("G6", "66"),
    ],
)
def test_one_lookalike_is_distance_one(query, plate):
    assert lookalike_distance(query, plate) == 1


def test_one_missing_or_extra_character_is_distance_one():
    assert lookalike_distance("789SJ", "789SJL") == 1
    assert lookalike_distance("7890SJL", "789SJL") == 1


def test_a_different_character_that_is_no_lookalike_does_not_match():
    assert lookalike_distance("789SJK", "789SJL") is None
    assert lookalike_distance("789SJK", "789SJL", max_distance=2) == 2


def test_a_totally_different_plate_does_not_match():
    assert lookalike_distance("ABC1234", "789SJL") is None
    assert lookalike_distance("ABC1234", "XYZ9876", max_distance=3) is None


def test_two_lookalikes_need_a_larger_distance():
    assert lookalike_distance("7B9SJI", "789SJ1") is None
    assert lookalike_distance("7B9SJI", "789SJ1", max_distance=2) == 2


def test_rank_matches_orders_by_distance_then_plate():
    plates = ["789SJL", "7B9SJL", "789SJ", "ABC123", "789-SJL"]
    assert rank_matches("789SJL", plates) == [("789-SJL", 0), ("789SJL", 0), ("789SJ", 1), ("7B9SJL", 1)]


def test_lookalike_key_folds_lookalike_pairs_together():
    assert lookalike_key("0I8-52G") == lookalike_key("o1bsz6") == "OIBSZG"
    assert lookalike_key("789SJL") != lookalike_key("789SJK")
