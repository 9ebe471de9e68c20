"""Turning the text recogniser's per-frame probabilities into plate readings.

The recogniser (CTC) scores every frame of a text line over ~18,700 symbols. A
plate only holds A-Z and 0-9, so the frames are first folded onto those 36
characters (upper and lower case together), a blank, and "other" (punctuation,
the separator dot, anything else). Greedy decoding on that small alphabet then
gives the best reading, and each decoded character keeps its runner-up so that
alternative readings can be built where the model hesitated.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

PLATE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
BLANK, OTHER = len(PLATE_CHARS), len(PLATE_CHARS) + 1


class Folding:
    """Maps the recogniser's symbols onto the plate characters, blank and other.

    Only the ~60 symbols that fold onto a plate character or the blank are summed;
    "other" is the rest of the probability mass (much cheaper than touching all
    ~18,700 columns for every frame).
    """

    def __init__(self, vocabulary: list[str]) -> None:
        columns, targets = [], []
        for index, symbol in enumerate(vocabulary):
            if index == 0:  # CTC blank is always first
                columns.append(index)
                targets.append(BLANK)
                continue
            upper = symbol.upper()
            target = PLATE_CHARS.find(upper) if len(upper) == 1 else -1
            if target >= 0:
                columns.append(index)
                targets.append(target)
        self.columns = np.array(columns)
        self.matrix = np.zeros((len(columns), len(PLATE_CHARS) + 2), dtype=np.float32)
        self.matrix[np.arange(len(columns)), targets] = 1.0

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        """(..., vocabulary) probabilities -> (..., 38)."""
        folded = probs[..., self.columns] @ self.matrix
        folded[..., OTHER] = np.clip(1.0 - folded.sum(axis=-1), 0.0, 1.0)
        return folded


@dataclass(frozen=True)
class DecodedChar:
    char: str
    prob: float  # peak probability of this character over its frames
    runner_up: str  # second most likely plate character at the peak frame ("" if none)
    runner_up_prob: float


def decode(frame_probs: np.ndarray) -> list[DecodedChar]:
    """Greedy CTC decoding of folded (frames, 38) probabilities."""
    best = frame_probs.argmax(axis=1)
    chars: list[DecodedChar] = []
    previous = BLANK
    run_start = 0
    for frame, symbol in enumerate(list(best) + [BLANK]):
        if symbol != previous:
            if previous < BLANK:
                chars.append(_char_of_run(frame_probs[run_start:frame], previous))
            run_start = frame
            previous = symbol
    return chars


def _char_of_run(run: np.ndarray, symbol: int) -> DecodedChar:
    peak = int(run[:, symbol].argmax())
    frame = run[peak, : len(PLATE_CHARS)].copy()
    prob = float(frame[symbol])
    frame[symbol] = -1.0
    second = int(frame.argmax())
    return DecodedChar(PLATE_CHARS[symbol], prob, PLATE_CHARS[second], float(max(frame[second], 0.0)))


def text_of(chars: list[DecodedChar]) -> str:
    return "".join(c.char for c in chars)


def reading_probability(chars: list[DecodedChar]) -> float:
    """Probability the whole reading is right, as the product of its characters'."""
    return float(np.prod([c.prob for c in chars])) if chars else 0.0


def alternatives(
    chars: list[DecodedChar], limit: int = 6, min_runner_up: float = 0.02
) -> list[tuple[str, float]]:
    """Readings with the most likely runner-up characters swapped in, most probable first.

    Probability of a variant: product over characters of the chosen character's
    probability. Only the three most doubtful positions are varied.
    """
    if not chars:
        return []
    doubtful = sorted(
        (i for i, c in enumerate(chars) if c.runner_up_prob >= min_runner_up),
        key=lambda i: chars[i].runner_up_prob,
        reverse=True,
    )[:3]
    readings = []
    for choice in itertools.product((False, True), repeat=len(doubtful)):
        swapped = {i for i, use in zip(doubtful, choice) if use}
        text = "".join(c.runner_up if i in swapped else c.char for i, c in enumerate(chars))
        prob = float(np.prod([c.runner_up_prob if i in swapped else c.prob for i, c in enumerate(chars)]))
        readings.append((text, prob))
    readings.sort(key=lambda reading: reading[1], reverse=True)
    return readings[:limit]
