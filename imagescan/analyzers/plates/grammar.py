"""Plate grammars per region: which strings look like plates, and lookalike fixes.

A template is a string of position classes: `L` a letter, `D` a digit, `A` either.
A reading that fits a template after swapping lookalike characters (O/0, I/1, B/8,
S/5, Z/2, G/6, and the rarer A/4, T/7, D/0, Q/0, L/1) only where the template
demands the other class is the "fixed" reading; nothing is changed where the
template accepts the character as read. Each swap lowers the reading's prior by
how believable that confusion is (O/0 costs nothing: plates print them alike).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lookalike swaps by target class: a digit where a letter is required and vice versa.
TO_LETTER = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "4": "A", "7": "T"}
TO_DIGIT = {
    "O": "0",
    "Q": "0",
    "D": "0",
    "I": "1",
    "L": "1",
    "B": "8",
    "S": "5",
    "Z": "2",
    "G": "6",
    "T": "7",
    "A": "4",
}

# Templates by region, most common first (the order follows the tune split of the
# benchmark, bench/plates.py). US states vary a lot, so its templates only rank
# readings; EU holds the Slovak/Czech/Polish/UK shapes; BR the old (ABC1234) and
# the Mercosul (ABC1D23) plates.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "us": ("LLDLDL", "DLLLDDD", "LLLDDDD", "LLLDDD", "DDDLLL", "LDDDDDD", "DDDDDLD"),
    "eu": ("LLDDDLL", "DLDDDDD", "DLLDDDD", "LLLDDDD", "LLDDDDD", "LLDDLLL"),
    "br": ("LLLDDDD", "LLLDLDD"),
}
REGIONS = ("auto", *TEMPLATES)
# Lengths a region issues. US states and EU countries issue vanity (personalised)
# plates of any letters and digits, down to two characters; Brazil does not.
LENGTHS: dict[str, tuple[int, int]] = {"us": (2, 8), "eu": (2, 8), "br": (7, 7)}
MIN_LENGTH = min(low for low, _ in LENGTHS.values())
MAX_LENGTH = max(high for _, high in LENGTHS.values())
# All-digit readings longer than this are phone numbers, serial numbers, dates.
MAX_DIGITS_ONLY = 7


def fits(text: str, template: str) -> bool:
    """True when every character of `text` is of the class the template requires."""
    if len(text) != len(template):
        return False
    for char, wanted in zip(text, template):
        if wanted == "L" and not char.isalpha():
            return False
        if wanted == "D" and not char.isdigit():
            return False
    return True


def fix_to_template(text: str, template: str) -> str | None:
    """`text` with lookalikes swapped only where the template demands; None if it cannot fit."""
    if len(text) != len(template):
        return None
    fixed = []
    for char, wanted in zip(text, template):
        if wanted == "L" and char.isdigit():
            char = TO_LETTER.get(char, "")
        elif wanted == "D" and char.isalpha():
            char = TO_DIGIT.get(char, "")
        if not char:
            return None
        fixed.append(char)
    return "".join(fixed)


# How believable a forced swap is: O/0 are the same glyph on many plates, I/1 nearly.
SWAP_LIKELIHOOD = {frozenset("O0"): 1.0, frozenset("I1"): 0.85, frozenset("Q0"): 0.6, frozenset("D0"): 0.5}
OTHER_SWAP_LIKELIHOOD = 0.35
# Later (rarer) templates of a region count a little less.
TEMPLATE_RANK_DECAY = 0.1


@dataclass(frozen=True)
class GrammarMatch:
    text: str
    region: str
    swaps: int  # characters changed to fit
    prior: float  # 0..1: template commonness x believability of the swaps


def templates_for(region: str) -> list[tuple[str, str, int]]:
    """(region, template, rank in its region) to try for a region hint; `auto` tries them all."""
    regions = list(TEMPLATES) if region == "auto" else [region]
    return [(name, template, rank) for name in regions for rank, template in enumerate(TEMPLATES[name])]


def grammar_readings(text: str, region: str = "auto") -> list[GrammarMatch]:
    """Plate readings of `text` under the region's grammars, fewest swaps first.

    The text as read comes first when it fits a template; readings that need swaps
    follow; each distinct string appears once.
    """
    matches: dict[str, GrammarMatch] = {}
    for name, template, rank in templates_for(region):
        fixed = fix_to_template(text, template)
        if fixed is None:
            continue
        swaps = [(a, b) for a, b in zip(text, fixed) if a != b]
        prior = 1.0 / (1.0 + TEMPLATE_RANK_DECAY * rank)
        for pair in swaps:
            prior *= SWAP_LIKELIHOOD.get(frozenset(pair), OTHER_SWAP_LIKELIHOOD)
        known = matches.get(fixed)
        if known is None or prior > known.prior:
            matches[fixed] = GrammarMatch(fixed, name, len(swaps), prior)
    return sorted(matches.values(), key=lambda match: match.prior, reverse=True)


# Camera time stamps (2014-06-17, 20140617) are the commonest false plates.
_DATE = re.compile(r"^(19|20)\d\d[01]\d[0-3]")


def is_plate_shaped(text: str, region: str = "auto") -> bool:
    """A length the region issues, ASCII letters and digits only (all letters and
    all digits included: vanity plates), and not a date or a long number."""
    low, high = (MIN_LENGTH, MAX_LENGTH) if region == "auto" else LENGTHS[region]
    if not (low <= len(text) <= high) or not (text.isascii() and text.isalnum()):
        return False
    if text.isdigit() and len(text) > MAX_DIGITS_ONLY:
        return False
    return not looks_like_date(text)


def looks_like_date(text: str) -> bool:
    """A reading that starts like a time stamp (yyyymmdd, O/I read for 0/1): no plate."""
    return bool(_DATE.match(text.translate(_AS_DIGITS)))


_AS_DIGITS = str.maketrans({"O": "0", "D": "0", "I": "1", "Z": "2", "S": "5"})
