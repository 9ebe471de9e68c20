"""Plate text helpers shared by the REST side and the recognizers (no engine imports).

A plate is compared in its normalised form: upper-case ASCII letters and digits
only, so `789-sjl` and `789 SJL` are the same plate. The fuzzy search tolerates the
mistakes OCR and people really make: one lookalike character (O/0, I/1, B/8, S/5,
Z/2, G/6) or one missing or extra character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Pairs of characters that OCR (and people) confuse on plates.
LOOKALIKE_PAIRS: tuple[tuple[str, str], ...] = (
    ("O", "0"),
    ("I", "1"),
    ("B", "8"),
    ("S", "5"),
    ("Z", "2"),
    ("G", "6"),
)
LOOKALIKES: dict[str, str] = {a: b for a, b in LOOKALIKE_PAIRS} | {b: a for a, b in LOOKALIKE_PAIRS}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

_NOT_ALNUM = re.compile(r"[^0-9A-Z]")
# Folding every lookalike digit onto its letter: plates that differ only by
# lookalikes share a key, so an index keyed by it finds them with one lookup.
_FOLD = str.maketrans({digit: letter for letter, digit in LOOKALIKE_PAIRS})


def normalize_plate(text: str) -> str:
    """Upper case, ASCII letters and digits only: `789-sjl` and `789 SJL` are both `789SJL`."""
    return _NOT_ALNUM.sub("", (text or "").upper())


def lookalike_key(plate: str) -> str:
    """Normalised plate with each lookalike digit folded onto its letter (0->O, 1->I, 8->B...)."""
    return normalize_plate(plate).translate(_FOLD)


def is_lookalike(a: str, b: str) -> bool:
    """True when the two single characters are a known lookalike pair."""
    return LOOKALIKES.get(a) == b


def lookalike_distance(a: str, b: str, max_distance: int = 1) -> int | None:
    """Edit distance between two plates, or None when it is above `max_distance`.

    Both are normalised first. Costs: a lookalike swap (O/0, I/1, B/8, S/5, Z/2,
    G/6) 1, a missing or extra character 1, any other substitution 2 (a different
    character, not a misreading). 0 means the same plate.
    """
    a, b = normalize_plate(a), normalize_plate(b)
    if abs(len(a) - len(b)) > max_distance:
        return None
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            if char_a == char_b:
                swap = 0
            elif is_lookalike(char_a, char_b):
                swap = 1
            else:
                swap = 2
            current[j] = min(previous[j - 1] + swap, previous[j] + 1, current[j - 1] + 1)
        if min(current) > max_distance:
            return None  # every alignment is already too far
        previous = current
    distance = previous[-1]
    return distance if distance <= max_distance else None


def rank_matches(query: str, plates: Iterable[str], max_distance: int = 1) -> list[tuple[str, int]]:
    """(plate, distance) for the plates within `max_distance` of the query, closest first,
    ties by plate text. Plates are returned as given, not normalised."""
    matches = []
    for plate in plates:
        distance = lookalike_distance(query, plate, max_distance)
        if distance is not None:
            matches.append((plate, distance))
    matches.sort(key=lambda match: (match[1], match[0]))
    return matches

