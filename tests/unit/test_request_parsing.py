"""The request parsing pieces on their own: whole numbers as this API has always read them, and
marshmallow's messages as the one sentence an error answer carries."""

from __future__ import annotations

import marshmallow as ma
import pytest

from rest.api.plates import PlateSearch
from rest.apidoc import WholeNumber, sentence, whole_number


@pytest.mark.parametrize("given, expected", [("12", 12), (12, 12), ("0012", 12)])
def test_whole_numbers_are_digits_or_integers(given, expected):
    assert WholeNumber().deserialize(given) == expected


@pytest.mark.parametrize("given", ["+1", "-1", "1.0", "1e3", " 5", "", "²", True, False, 1.5, 2.0, None, [1]])
def test_anything_else_is_refused(given):
    with pytest.raises(ma.ValidationError):
        WholeNumber().deserialize(given)


def test_spaces_around_digits_only_where_allowed():
    assert WholeNumber(spaces=True).deserialize(" 60 ") == 60
    with pytest.raises(ma.ValidationError):
        WholeNumber(spaces=True).deserialize(" ")


def test_a_bounded_number_says_the_same_thing_however_it_is_wrong():
    schema = ma.Schema.from_dict({"limit": whole_number("limit", 1, 100, 24)})()
    for bad in ("0", "101", "x"):
        with pytest.raises(ma.ValidationError) as refused:
            schema.load({"limit": bad})
        assert refused.value.messages == {"limit": ["limit must be a whole number from 1 to 100"]}
    assert schema.load({}) == {"limit": 24}


@pytest.mark.parametrize("given, level", [("0", 0), ("false", 0), ("No", 0), ("1", 1), ("TRUE", 1), ("yes", 1),
                                          ("2", 2)])
def test_fuzziness_words(given, level):
    assert PlateSearch().load({"fuzzy": given}) == {"fuzzy": level}


def test_fuzziness_beyond_two_is_refused():
    with pytest.raises(ma.ValidationError):
        PlateSearch().load({"fuzzy": "3"})


@pytest.mark.parametrize("messages, expected", [
    ({"query": {"limit": ["limit must be a whole number from 1 to 100"]}}, "limit must be a whole number from 1 to 100"),
    ({"json": {"expiry": ["Not a valid integer."]}}, "expiry: Not a valid integer."),
    ({"json": {"_schema": ["Invalid input type."]}}, "Invalid input type."),
    ({"files": {"a": ["a is missing"], "b": ["Missing."]}}, "a is missing; b: Missing."),
    ({"json": {"x": ["twice x"], "y": ["twice x"]}}, "twice x; y: twice x"),
    ({}, "the request is malformed"),
])
def test_messages_become_one_sentence(messages, expected):
    assert sentence(messages) == expected
