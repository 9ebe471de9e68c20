"""The fuzzy plate index never misses a plate within the asked distance."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from imagescan.plateindex import index_forms, probe_forms
from imagescan.platetext import ALPHABET, lookalike_distance

plates = st.text(alphabet=ALPHABET, min_size=1, max_size=9)


def _found(query: str, plate: str, fuzziness: int) -> bool:
    return bool(probe_forms(query, fuzziness) & index_forms(plate))


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
@given(plates, st.integers(0, 2**32), st.integers(1, 2), st.integers(1, 3))
def test_every_plate_within_the_distance_is_a_candidate(plate, seed, fuzziness, edits):
    query = _edited(plate, random.Random(seed), edits)
    distance = lookalike_distance(query, plate, fuzziness)
    if distance is not None and query:
        assert _found(query, plate, fuzziness), (query, plate, distance)


def test_the_course_example_and_its_neighbours():
    assert _found("7B9SJLD", "789SJL", 2)  # one lookalike, one extra character
    assert _found("789SJ", "789SJL", 1)  # one missing
    assert _found("89SJ", "789SJL", 2)  # two missing: the insertion probes
    assert not _found("XYZ999", "789SJL", 2)


def test_the_index_is_small_and_a_probe_bounded():
    assert len(index_forms("ABC1234")) <= 8
    assert len(probe_forms("ABC1234", 2)) < 300
    assert len(probe_forms("ABC1234", 1)) <= 8
