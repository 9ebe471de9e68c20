"""Plate readings: O and 0 (one glyph), all-digit US plates, and the ranker's calibration."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from imagescan.analyzers import load_plate_recognizer
from imagescan.analyzers.plates import grammar, ranking
from imagescan.analyzers.plates.reading import BLANK, PLATE_CHARS

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import plate_calibration
import train_plate_ranker

from tests.unit.test_plates import rendered_plate

# -- a letter O between digits is a zero ------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "plate"),
    [
        ("1O49338", "1049338"),
        ("1OO5", "1005"),  # a run of Os between digits
        ("RK6O5AB", "RK605AB"),
        ("4BO4979", "4BO4979"),  # a letter on one side: left to the templates
        ("O123", "O123"),
        ("12O", "12O"),
        ("GOBLUE", "GOBLUE"),
    ],
)
def test_an_o_between_digits_is_read_as_zero(read, plate):
    assert grammar.zero_between_digits(read) == plate


def test_no_template_fit_keeps_a_letter_o_between_digits():
    # DLDDDDD (Czech) would fit 1O49338 as read; its letter position never holds an O.
    texts = {match.text for match in grammar.grammar_readings("1O49338", "auto")}
    assert "1O49338" not in texts
    assert all(grammar.zero_between_digits(text) == text for text in texts)


def test_us_grammar_holds_all_digit_plates():
    best = grammar.grammar_readings("1049338", "us")[0]
    assert (best.text, best.region, best.swaps) == ("1049338", "us", 0)
    assert grammar.grammar_readings("12345", "us")[0].swaps == 0
    assert grammar.grammar_readings("1234", "us") == []  # shorter ones are vanity plates


def test_o_as_zero_spells_mixed_readings_the_us_way_and_leaves_words():
    assert grammar.o_as_zero("HLOKTY1") == "HL0KTY1"
    assert grammar.o_as_zero("GOBLUE") == "GOBLUE"
    assert grammar.o_as_zero("WOBVWMK4") == "WOBVWMK4"  # longer than any US serial


def test_a_fit_as_read_keeps_other_regions_templates_out():
    regions = {match.region for match in grammar.grammar_readings("1049338", "auto")}
    assert regions == {"us"}  # not the EU LLDDDDD fit IO49338
    # Nothing fits as read: every region's fits stay.
    assert {match.region for match in grammar.grammar_readings("RKO99AN", "auto")} >= {"eu"}


def spelled(text: str) -> np.ndarray:
    """Folded recogniser frames that read `text` with certainty (a blank between characters)."""
    rows = []
    for char in text:
        for symbol in (PLATE_CHARS.index(char), BLANK):
            row = np.zeros(len(PLATE_CHARS) + 2, dtype=np.float32)
            row[symbol] = 1.0
            rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("region", ["auto", "us", "eu"])
def test_candidates_of_a_reading_with_o_between_digits_hold_the_zero_not_the_o(region):
    candidates = ranking.reading_candidates(spelled("1O49338"), region)
    assert "1049338" in candidates and "1O49338" not in candidates
    assert candidates["1049338"].as_read


def test_a_mixed_reading_off_the_templates_offers_both_spellings_equally():
    candidates = ranking.reading_candidates(spelled("HLOKTY1"), "auto")
    assert candidates["HLOKTY1"].score == candidates["HL0KTY1"].score
    texts, rows = ranking.line_features(
        [candidates], ranking.LineGeometry(0.1, -3.0, 0.7, 0.1, 0.8)
    )
    ranks = {text: row[ranking.FEATURES.index("log_rank")] for text, row in zip(texts, rows)}
    assert ranks["HLOKTY1"] == ranks["HL0KTY1"]  # equal scores share a rank


@pytest.mark.parametrize("region", ["us", "auto"])
def test_an_all_digit_plate_with_round_zeros_is_read_with_zeros(region):
    # Pillow's font draws 0 as round as an O: the recogniser reads 1O49338. Under
    # `auto` the EU template LLDDDDD (IO49338) is no prior: the reading fits a US one.
    recognizer = load_plate_recognizer("rapidocr", region=region)
    reads = recognizer.recognize(rendered_plate("1049338", plate_width=300, font_size=56))
    assert reads and reads[0].plate == "1049338"
    assert all("1O4" not in c.plate for c in reads[0].candidates)


# -- calibration: smooth, never 0 for a rare shape ---------------------------------------------


def test_shipped_calibration_is_increasing_and_never_zero_for_a_possible_plate():
    ranker = ranking.Ranker.shipped()
    raw = np.array([1e-3, 1e-2, 0.05, 0.2, 0.5, 0.9, 0.99])
    calibrated = np.interp(raw, ranker.calibration_in, ranker.calibration_out)
    assert (calibrated > 0).all() and (np.diff(calibrated) > 0).all() and (calibrated < 1).all()


def test_platt_scaling_recovers_a_known_calibration():
    rng = np.random.default_rng(0)
    scores = 1.0 / (1.0 + np.exp(-rng.normal(0.0, 3.0, 20000)))
    logits = np.log(scores / (1.0 - scores))
    truth = 1.0 / (1.0 + np.exp(-(0.5 * logits - 1.0)))  # over-confident scores
    right = (rng.random(len(scores)) < truth).astype(float)
    xs, ys = plate_calibration.platt(scores, right)
    probe = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    probe_logits = np.log(probe / (1.0 - probe))
    expected = 1.0 / (1.0 + np.exp(-(0.5 * probe_logits - 1.0)))
    assert np.allclose(np.interp(probe, xs, ys), expected, atol=0.03)


def test_calibration_follows_full_bins_and_the_curve_where_bins_are_empty_of_right_lines():
    rng = np.random.default_rng(2)
    scores = 1.0 / (1.0 + np.exp(-rng.normal(-1.0, 3.0, 1200)))
    right = (rng.random(len(scores)) < scores).astype(float)  # already calibrated
    xs, ys = plate_calibration.calibration(scores, right)
    assert (np.diff(xs) > 0).all() and (np.diff(ys) >= 0).all()
    # The lowest twelfth of lines holds (almost) no right one: its share is not 0.
    low = np.sort(scores)[len(scores) // 24]
    assert 0 < np.interp(low, xs, ys) < 0.05
    probe = np.array([0.2, 0.5, 0.8])
    assert np.allclose(np.interp(probe, xs, ys), probe, atol=0.1)


def test_a_rare_shape_seen_only_in_negatives_gets_a_bounded_penalty():
    # 2000 candidates, a feature that is 1 in 20 negatives only: without the shape
    # prior its weight runs off; with it, the penalty stays within a few log odds.
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(2000, len(ranking.FEATURES)))
    labels = (rows[:, 0] + rng.normal(size=2000) > 1.0).astype(float)
    shape = ranking.FEATURES.index("digits_only")
    rows[:, shape] = 0.0
    rows[np.flatnonzero(labels == 0)[:20], shape] = 1.0
    penalties = {}
    for sd in (0.0, 1.0):
        _, scale, weights, _ = train_plate_ranker.fit_logistic(rows, labels, sd)
        penalties[sd] = weights[shape] / scale[shape]  # log odds per unit
    assert penalties[1.0] < 0
    assert abs(penalties[1.0]) < 2.5 < abs(penalties[0.0])
