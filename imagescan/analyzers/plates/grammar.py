"""Plate grammars per region: which strings look like plates, and lookalike fixes.

A template is a string of position classes: `L` a letter, `D` a digit, `A` either.
A reading that fits a template after swapping lookalike characters (O/0, I/1, B/8,
S/5, Z/2, G/6, and the rarer A/4, T/7, D/0, Q/0, L/1) only where the template
demands the other class is the "fixed" reading; nothing is changed where the
template accepts the character as read. Each swap lowers the reading's prior by
how believable that confusion is (O/0 costs nothing: plates print them alike).
A letter O between two digits is read as 0 before any template is tried, and no
template fit may put one there (`zero_between_digits`).
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

# Many US states issue plates of digits only (five to seven of them).
US_DIGITS_ONLY = ("DDDDDDD", "DDDDDD", "DDDDD")
# Templates by region, most common first (the order follows the tune split of the
# benchmark, bench/plates.py; the all-digit US ones, absent there, last). US states
# vary a lot, so its templates only rank readings; EU holds the Slovak/Czech/Polish/UK
# shapes; BR the old (ABC1234) and the Mercosul (ABC1D23) plates.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "us": ("LLDLDL", "DLLLDDD", "LLLDDDD", "LLLDDD", "DDDLLL", "LDDDDDD", "DDDDDLD", *US_DIGITS_ONLY),
    "eu": ("LLDDDLL", "DLDDDDD", "DLLDDDD", "LLLDDDD", "LLDDDDD", "LLDDLLL"),
    "br": ("LLLDDDD", "LLLDLDD"),
}
REGIONS = ("auto", *TEMPLATES)
US_SERIAL_LENGTH = max(len(template) for template in TEMPLATES["us"])
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
        if fixed is None or zero_between_digits(fixed) != fixed:
            continue  # cannot fit, or only with a letter O between digits (not issued)
        swaps = [(a, b) for a, b in zip(text, fixed) if a != b]
        prior = 1.0 / (1.0 + TEMPLATE_RANK_DECAY * rank)
        for pair in swaps:
            prior *= SWAP_LIKELIHOOD.get(frozenset(pair), OTHER_SWAP_LIKELIHOOD)
        known = matches.get(fixed)
        if known is None or prior > known.prior:
            matches[fixed] = GrammarMatch(fixed, name, len(swaps), prior)
    as_read = {match.region for match in matches.values() if match.swaps == 0}
    if as_read:
        # A reading that fits a region's template as read was read under that
        # region's grammar: other regions' templates are no prior for it.
        matches = {text: match for text, match in matches.items() if match.region in as_read}
    return sorted(matches.values(), key=lambda match: match.prior, reverse=True)


# Camera time stamps (2014-06-17, 20140617) are the commonest false plates.
_DATE = re.compile(r"^(19|20)\d\d[01]\d[0-3]")


def zero_between_digits(text: str) -> str:
    """`text` with every letter O that has a digit on both sides read as the digit 0.

    Plates print O and 0 alike, and no plate scheme of these regions issues the
    letter O between two digits: US serials treat O and 0 as one character (most
    states do not issue the letter O at all), and the only templates with a letter
    between digits draw it from sets without O (the Czech district letter of
    DLDDDDD, the Mercosul fifth character A-J, see TEMPLATES). So an O there is a
    zero as read, not a template's choice of letter.
    """
    if "O" not in text:
        return text
    chars = list(text)
    for i in range(1, len(chars) - 1):
        if chars[i] == "O" and chars[i - 1].isdigit() and _digit_after(chars, i):
            chars[i] = "0"
    return "".join(chars)


def o_as_zero(text: str) -> str:
    """A reading of letters and digits with every O written as 0: the US spelling
    (serials treat them as one character). Readings of letters only (vanity words)
    and readings longer than any US serial are left alone."""
    if len(text) > US_SERIAL_LENGTH or not any(char.isdigit() for char in text):
        return text
    return text.replace("O", "0")


def _digit_after(chars: list[str], i: int) -> bool:
    """A digit follows position i, counting a run of O (100O5: both Os are zeros)."""
    j = i + 1
    while j < len(chars) and chars[j] == "O":
        j += 1
    return j < len(chars) and chars[j].isdigit()


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
