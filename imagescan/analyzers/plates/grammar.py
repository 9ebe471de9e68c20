"""Plate grammars per region: which strings look like plates, and lookalike fixes.

A template is a string of position classes: `L` a letter, `D` a digit, `A` either.
A reading that fits a template after swapping lookalike characters (O/0, I/1, B/8,
S/5, Z/2, G/6) only where the template demands the other class is the "fixed"
reading; nothing is changed where the template accepts the character as read.
"""

from __future__ import annotations

from dataclasses import dataclass

# Lookalike swaps by target class: a digit where a letter is required and vice versa.
TO_LETTER = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "4": "A", "7": "T"}
TO_DIGIT = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2", "G": "6", "T": "7", "A": "4"}

# Templates by region, most common first. US states vary a lot, so its templates
# only rank readings; EU lists the common Slovak/Czech/Polish/UK/German shapes;
# BR lists the old (ABC1234) and the Mercosul (ABC1D23) plates.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "us": ("LLDLDL", "DLLLDDD", "LLLDDDD", "LLLDDD", "DDDLLL", "LDDDDDD", "DDLDLL", "DDDDDLD", "LLDDDDD", "DLLDDDD"),
    "eu": ("LLDDDLL", "DLDDDDD", "DLLDDDD", "LLDDDDD", "LLLDDDD", "LLLDDLL", "LLDDLLL", "LLLDLLL", "LLDLDLL"),
    "br": ("LLLDDDD", "LLLDLDD"),
}
REGIONS = ("auto", *TEMPLATES)
MIN_LENGTH, MAX_LENGTH = 4, 8


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


@dataclass(frozen=True)
class GrammarMatch:
    text: str
    region: str | None  # None: plate-shaped but fits no template
    swaps: int  # characters changed to fit


def templates_for(region: str) -> list[tuple[str, str]]:
    """(region, template) pairs to try for a region hint; `auto` tries them all."""
    regions = list(TEMPLATES) if region == "auto" else [region]
    return [(name, template) for name in regions for template in TEMPLATES[name]]


def grammar_readings(text: str, region: str = "auto") -> list[GrammarMatch]:
    """Plate readings of `text` under the region's grammars, fewest swaps first.

    The text as read comes first when it fits a template; readings that need swaps
    follow; each distinct string appears once.
    """
    matches: dict[str, GrammarMatch] = {}
    for name, template in templates_for(region):
        fixed = fix_to_template(text, template)
        if fixed is None:
            continue
        swaps = sum(1 for a, b in zip(text, fixed) if a != b)
        known = matches.get(fixed)
        if known is None or swaps < known.swaps:
            matches[fixed] = GrammarMatch(fixed, name, swaps)
    return sorted(matches.values(), key=lambda match: match.swaps)


def is_plate_shaped(text: str) -> bool:
    """Length of a plate, letters and digits only, and not a run of one character class
    that is too long to be a plate (dates, phone numbers, words)."""
    if not (MIN_LENGTH <= len(text) <= MAX_LENGTH) or not text.isalnum() or not text.isascii():
        return False
    return True
