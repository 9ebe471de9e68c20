"""Plate text helpers shared by the REST side and the recognizers (no engine imports)."""

from __future__ import annotations

import re

_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def normalize_plate(text: str) -> str:
    """Upper case, letters and digits only: `789-sjl` and `789 SJL` are both `789SJL`."""
    return _NOT_ALNUM.sub("", text.upper())
