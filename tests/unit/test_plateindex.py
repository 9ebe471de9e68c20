"""The fuzzy plate index never misses a plate within the asked distance."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagescan.plateindex import PAIR, SINGLE, index_forms, probe_forms
from imagescan.platetext import ALPHABET, lookalike_distance, lookalike_key

plates = st.text(alphabet=ALPHABET, min_size=1, max_size=9)


def _found(query: str, plate: str, fuzziness: int, pairs_filed: bool = True) -> bool:
    """Whether a probe of the query meets a form the plate is filed under, kind by kind
    (an index without pair forms: the plate's single forms only)."""
    filed = index_forms(plate)
    if not pairs_filed:
        filed.pop(PAIR)
    return any(forms & filed.get(kind, set()) for kind, forms in probe_forms(query, fuzziness, pairs_filed).items())


def _edited(plate: str, rng: random.Random, edits: int) -> str:
    """The plate after `edits` random lookalike swaps, insertions, deletions or substitutions."""
    for _ in range(edits):
        i = rng.randrange(len(plate) + 1)
        choice = rng.choice(["swap", "insert", "delete", "substitute"])
        if choice == "insert" or i == len(plate):
            plate = plate[:i] + rng.choice(ALPHABET) + plate[i:]
        elif choice == "delete":
            plate = plate[:i] + plate[i + 1:]
        else:
            plate = plate[:i] + rng.choice(ALPHABET) + plate[i + 1:]
    return plate


@settings(max_examples=400, deadline=None)
@given(plates, st.integers(0, 2**32), st.integers(1, 2), st.integers(1, 3), st.booleans())
def test_every_plate_within_the_distance_is_a_candidate(plate, seed, fuzziness, edits, pairs_filed):
    query = _edited(plate, random.Random(seed), edits)
    distance = lookalike_distance(query, plate, fuzziness)
    if distance is not None and query:
        assert _found(query, plate, fuzziness, pairs_filed), (query, plate, distance)


@pytest.mark.parametrize("pairs_filed", [True, False])
def test_the_course_example_and_its_neighbours(pairs_filed):
    assert _found("7B9SJLD", "789SJL", 2, pairs_filed)  # one lookalike, one extra character
    assert _found("789SJ", "789SJL", 1, pairs_filed)  # one missing
    assert _found("89SJ", "789SJL", 2, pairs_filed)  # two missing: the pair forms, or the insertions
    assert not _found("89SJ", "789SJL", 1, pairs_filed)
    assert not _found("XYZ999", "789SJL", 2, pairs_filed)


def test_two_missing_characters_meet_only_the_pair_forms():
    folded = lookalike_key("89SJ")
    assert probe_forms("89SJ", 2)[PAIR] == {folded}
    assert folded in index_forms("789SJL")[PAIR]
    assert not probe_forms("89SJ", 2)[SINGLE] & index_forms("789SJL")[SINGLE]
    # two substitutions are four edits: the query's and the plate's two-deletion forms meet
    # ("ABCD"), but the query's never look among the plate's pair forms
    assert not _found("ABCDEF", "ABCDXY", 2)


def test_the_index_is_small_and_a_probe_bounded():
    filed = index_forms("ABC1234")
    assert len(filed[SINGLE]) <= 8 and len(filed[PAIR]) <= 21
    assert sum(map(len, probe_forms("ABC1234", 2).values())) <= 1 + 7 + 21 + 1
    assert sum(map(len, probe_forms("ABC1234", 2, pairs_filed=False).values())) < 300
    assert sum(map(len, probe_forms("ABC1234", 1).values())) <= 8
