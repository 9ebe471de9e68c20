"""Which reading of which text line is the plate: candidate features and a learned ranker.

Every detected plate-shaped text line is read from a few crops (different margins).
Each reading yields candidate plates: the text as read, runner-up characters
swapped in where the recogniser hesitated, a stray first or last character dropped,
and lookalikes fixed to the region's templates (`grammar.py`). Each candidate is
described by a few numbers (`FEATURES`) and a logistic regression, trained on the
tune split of the plate benchmark by `bench/train_plate_ranker.py`, turns them
into the probability that the candidate is the plate. Its weights are in
`ranker_weights.py`, written by that script.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imagescan.analyzers.plates import geometry, grammar
from imagescan.analyzers.plates.reading import alternatives, decode, reading_probability, text_of

# Candidates kept per line.
MAX_CANDIDATES = 8
# Dropping a stray character (state sticker, frame screw, badge) costs at most this.
TRIM_PRIOR = 0.7
# The hand-set prior of a reading no template of the region fits (vanity plates).
OFF_GRAMMAR_PRIOR = 0.3

READING_FEATURES = (
    "log_vote",  # log of the hand-set score, averaged over readings (the old ranking)
    "log_line_quality",  # geometric mean of the best reading's character probabilities
    "log_relative",  # log of (this variant's probability / the best reading's)
    "log_prior",  # log of the grammar prior (template rank, believability of swaps)
    "off_grammar",  # 1 when no template of the region fits
    "swaps",  # characters changed to fit a template
    "trimmed",  # a stray character was dropped
    "agreement",  # share of the line's readings that produced this candidate
    "shape_penalty",  # |log(aspect / typical plate line aspect)|
    "log_height",  # log of line height / image height
    "centre_y",  # line centre / image height
    "off_centre_x",  # |line centre / image width - 0.5|
    "contrast",  # grey-level spread of the line crop / 64
    "as_read",  # the candidate is a reading exactly as decoded, nothing swapped or dropped
    "log_rank",  # log(1 + rank among the line's candidates by the hand-set score)
)
# Features of the text alone (recomputed from the text when the ranker is retrained).
TEXT_FEATURES = (
    "letters_only",
    "digits_only",
    "short",  # 2 or 3 characters
    "length",  # characters / 7
    "rare_letters",  # I, O and Q: most US states and many countries leave them out
    "lone_letters",  # letters with a digit on both sides (1O49338: an O read for a 0)
)
FEATURES = READING_FEATURES + TEXT_FEATURES
RARE_LETTERS = frozenset("IOQ")


def text_features(text: str) -> list[float]:
    return [
        float(text.isalpha()),
        float(text.isdigit()),
        float(len(text) <= 3),
        len(text) / 7.0,
        float(sum(char in RARE_LETTERS for char in text)),
        float(sum(_lone_letter(text, i) for i in range(1, len(text) - 1))),
    ]


@dataclass(frozen=True)
class LineGeometry:
    """What the line looks like in the image, shared by all its candidates."""

    shape_penalty: float
    log_height: float
    centre_y: float
    off_centre_x: float
    contrast: float

    @classmethod
    def of(cls, quad: np.ndarray, shape: tuple[int, ...], crop: np.ndarray) -> LineGeometry:
        height, width = shape[:2]
        _, line_height = geometry.quad_size(quad)
        centre = quad.mean(axis=0)
        grey = crop.mean(axis=2) if crop.ndim == 3 else crop
        return cls(
            shape_penalty=geometry.line_shape_penalty(quad),
            log_height=math.log(max(line_height, 1.0) / height),
            centre_y=float(centre[1] / height),
            off_centre_x=float(abs(centre[0] / width - 0.5)),
            contrast=float(grey.std() / 64.0) if grey.size else 0.0,
        )


@dataclass
class _Derivation:
    score: float  # hand-set score: line quality x relative probability x prior
    line_quality: float
    relative: float
    prior: float
    off_grammar: bool
    swaps: int
    trimmed: bool
    as_read: bool


def reading_candidates(frame_probs: np.ndarray, region: str) -> dict[str, _Derivation]:
    """Candidates of one reading (one crop) of a line, each with its best derivation."""
    chars = decode(frame_probs)
    if not chars or grammar.looks_like_date(text_of(chars)):
        return {}
    best_prob = reading_probability(chars)
    line_quality = best_prob ** (1.0 / len(chars))
    found: dict[str, _Derivation] = {}
    for rank, (text, prob) in enumerate(alternatives(chars)):
        for variant, variant_prob, trimmed in _trimmed(text, prob, [c.prob for c in chars]):
            variant = grammar.zero_between_digits(variant)  # the same glyph, as read
            if not grammar.is_plate_shaped(variant, region):
                continue
            relative = variant_prob / max(best_prob, 1e-12)
            for fixed, prior, swaps, off in _grammar_fits(variant, region):
                derivation = _Derivation(
                    score=line_quality * relative * prior,
                    line_quality=line_quality,
                    relative=relative,
                    prior=prior,
                    off_grammar=off,
                    swaps=swaps,
                    trimmed=trimmed,
                    as_read=rank == 0 and not trimmed and swaps == 0,
                )
                known = found.get(fixed)
                if known is None or derivation.score > known.score:
                    found[fixed] = derivation
    return found


def line_features(
    readings: list[dict[str, _Derivation]], line: LineGeometry
) -> tuple[list[str], np.ndarray]:
    """Candidates of a line (several readings voted together) and their feature rows."""
    if not readings:
        return [], np.zeros((0, len(FEATURES)))
    texts = {text for reading in readings for text in reading}
    votes = {t: sum(r[t].score for r in readings if t in r) / len(readings) for t in texts}
    ordered = sorted(texts, key=votes.__getitem__, reverse=True)
    rows = []
    for text in ordered:
        # Equal scores share a rank (O and 0 spellings of one reading).
        rank = sum(votes[other] > votes[text] * (1.0 + 1e-9) for other in ordered)
        best = max((r[text] for r in readings if text in r), key=lambda d: d.score)
        rows.append(
            [
                math.log(max(votes[text], 1e-6)),
                math.log(max(best.line_quality, 1e-6)),
                math.log(max(best.relative, 1e-6)),
                math.log(max(best.prior, 1e-6)) if not best.off_grammar else 0.0,
                float(best.off_grammar),
                float(best.swaps),
                float(best.trimmed),
                sum(text in r for r in readings) / len(readings),
                line.shape_penalty,
                line.log_height,
                line.centre_y,
                line.off_centre_x,
                line.contrast,
                float(any(text in r and r[text].as_read for r in readings)),
                math.log(1.0 + rank),
                *text_features(text),
            ]
        )
    return ordered, np.asarray(rows, dtype=np.float64)


class Ranker:
    """Logistic regression over standardised features, then a calibration table."""

    def __init__(self, mean, scale, weights, bias, calibration_in, calibration_out):
        """`mean`/`scale` standardise the features, `weights`/`bias` the regression on them,
        and the calibration table (increasing) maps its output to a probability."""
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)
        self.calibration_in = np.asarray(calibration_in, dtype=np.float64)
        self.calibration_out = np.asarray(calibration_out, dtype=np.float64)
        if not (len(self.mean) == len(self.scale) == len(self.weights) == len(FEATURES)):
            raise ValueError("ranker weights do not match the candidate features")

    @classmethod
    def shipped(cls) -> Ranker:
        from imagescan.analyzers.plates import ranker_weights as w

        if tuple(w.FEATURES) != FEATURES:
            raise ValueError("ranker_weights.py was trained on other features: retrain it")
        return cls(w.MEAN, w.SCALE, w.WEIGHTS, w.BIAS, w.CALIBRATION_IN, w.CALIBRATION_OUT)

    @classmethod
    def load(cls, path) -> Ranker:
        """A ranker saved as JSON by bench/train_plate_ranker.py (--out)."""
        fields = json.loads(Path(path).read_text())
        if tuple(fields.pop("features")) != FEATURES:
            raise ValueError(f"{path} was trained on other features")
        return cls(**fields)

    def to_dict(self) -> dict:
        return {
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "calibration_in": self.calibration_in.tolist(),
            "calibration_out": self.calibration_out.tolist(),
        }

    def raw(self, rows: np.ndarray) -> np.ndarray:
        """The regression's probability for each row."""
        if not len(rows):
            return np.zeros(0)
        logits = ((rows - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))

    def confidence(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated probability that each candidate is the plate."""
        return np.interp(self.raw(rows), self.calibration_in, self.calibration_out)


def _lone_letter(text: str, i: int) -> bool:
    return text[i].isalpha() and text[i - 1].isdigit() and text[i + 1].isdigit()


def _trimmed(text: str, prob: float, char_probs: list[float]) -> list[tuple[str, float, bool]]:
    """The reading, and for long readings the reading without one stray character.

    The first or last character may be a sticker or a screw (6+ characters); an
    inner one a badge between the groups, such as the round sticker on Czech
    plates read as `8` (8+ characters). The less sure the recogniser was of a
    character, the likelier it is stray.
    """
    variants = [(text, prob, False)]
    if len(text) < 6 or text.isdigit():
        return variants
    droppable = range(len(text)) if len(text) >= 8 else (0, len(text) - 1)
    for i in droppable:
        stray = TRIM_PRIOR * (1.0 - 0.5 * char_probs[i])
        variants.append((text[:i] + text[i + 1 :], prob * stray, True))
    return variants


def _grammar_fits(text: str, region: str) -> list[tuple[str, float, int, bool]]:
    """(plate, prior, swaps, off-grammar) readings of `text`: template fits, and the
    text as read when it fits no template as read (vanity plates)."""
    matches = grammar.grammar_readings(text, region)
    fits = [(m.text, m.prior, m.swaps, False) for m in matches]
    if not any(m.swaps == 0 for m in matches):
        fits.append((text, OFF_GRAMMAR_PRIOR, 0, True))
        zeros = grammar.o_as_zero(text)
        if zeros != text:
            fits.append((zeros, OFF_GRAMMAR_PRIOR, 0, True))
    return fits
