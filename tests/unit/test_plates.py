"""Plate engines: RapidOCR on a few real photos, plate grammars, CTC reading, OpenALPR loading."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from imagescan.analyzers import EngineUnavailable, load_plate_recognizer
from imagescan.analyzers.plates import geometry, grammar, models, ranking
from imagescan.analyzers.plates.reading import BLANK, OTHER, PLATE_CHARS, alternatives, decode, text_of
from imagescan.platetext import normalize_plate

REPO_ROOT = Path(__file__).resolve().parents[2]
PLATES = REPO_ROOT.parent / "shared" / "data" / "plates"

needs_photos = pytest.mark.skipif(not PLATES.is_dir(), reason="shared plate photos are absent")

# Small photos (fast to read) from each set, with clear plates.
PHOTOS = ["us/car14.jpg", "eu/eu6.jpg", "br/PUT6858.jpg"]


@pytest.fixture(scope="module")
def recognizer():
    return load_plate_recognizer("rapidocr")


def labelled(photo: str) -> tuple[Image.Image, tuple[int, int, int, int], str]:
    path = PLATES / photo
    _, x, y, w, h, plate = path.with_suffix(".txt").read_text().split("\t")[:6]
    with Image.open(path) as opened:
        return opened.convert("RGB"), (int(x), int(y), int(w), int(h)), normalize_plate(plate)


def iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


# -- the engine on real photos -------------------------------------------------------------


@needs_photos
@pytest.mark.parametrize("photo", PHOTOS)
def test_reads_the_labelled_plate_first_with_its_box(recognizer, photo):
    image, box, plate = labelled(photo)
    reads = recognizer.recognize(image)
    assert reads, "no plate found"
    best = reads[0]
    assert best.plate == plate
    assert iou((best.box.x, best.box.y, best.box.w, best.box.h), box) >= 0.5


@needs_photos
def test_outputs_are_normalised_with_sorted_candidates(recognizer):
    image, _, _ = labelled("us/car14.jpg")
    reads = recognizer.recognize(image)
    assert reads
    assert [r.confidence for r in reads] == sorted((r.confidence for r in reads), reverse=True)
    for read in reads:
        assert read.plate == normalize_plate(read.plate) and read.plate
        assert 0.0 <= read.confidence <= 1.0
        assert read.candidates[0].plate == read.plate
        assert read.candidates[0].confidence == read.confidence
        scores = [c.confidence for c in read.candidates]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert all(c.plate == normalize_plate(c.plate) for c in read.candidates)
        assert 0 <= read.box.x < image.width and 0 <= read.box.y < image.height


def test_blank_and_tiny_images_have_no_plates(recognizer):
    assert recognizer.recognize(Image.new("RGB", (1280, 720), (128, 128, 128))) == []
    assert recognizer.recognize(Image.new("RGB", (5, 5), (255, 255, 255))) == []


def test_grey_and_alpha_images_are_accepted(recognizer):
    assert recognizer.recognize(Image.new("L", (320, 240), 200)) == []
    assert recognizer.recognize(Image.new("RGBA", (320, 240), (0, 0, 0, 0))) == []


def test_unknown_region_is_refused():
    with pytest.raises(ValueError, match="region"):
        load_plate_recognizer("rapidocr", region="mars")


def test_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="detector"):
        load_plate_recognizer("rapidocr", detector="huge")


def test_mobile_detector_without_its_wheel_is_unavailable(monkeypatch):
    real_find_spec = models.importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util,
        "find_spec",
        lambda name, *args: None if name == models.MOBILE_DETECTOR_PACKAGE else real_find_spec(name, *args),
    )
    with pytest.raises(EngineUnavailable, match=models.MOBILE_DETECTOR_PACKAGE):
        load_plate_recognizer("rapidocr", detector="mobile")
    # "auto" falls back to rapidocr's own detector instead.
    assert models.detector_model_path("auto") is None
    assert models.detector_model_path("small") is None


@pytest.mark.skipif(
    models.importlib.util.find_spec(models.MOBILE_DETECTOR_PACKAGE) is None,
    reason="the mobile detector's wheel is not installed",
)
def test_auto_takes_the_mobile_detector_when_installed():
    path = models.detector_model_path("auto")
    assert path is not None and path.name == "ch_PP-OCRv4_det_infer.onnx" and path.is_file()


@needs_photos
def test_whole_image_pass_reads_the_same_plate(recognizer):
    """window_pass=False scans the whole image at full resolution: the slow reference."""
    image, _, plate = labelled("us/car14.jpg")
    whole = load_plate_recognizer("rapidocr", window_pass=False, quick_det_side=0)
    assert whole.recognize(image)[0].plate == plate == recognizer.recognize(image)[0].plate


# -- windows for the sharp detector pass ------------------------------------------------------


def test_text_windows_surround_faint_text_in_image_pixels():
    text_map = np.zeros((360, 640), dtype=np.float32)  # the quick pass saw a 1280x720 image at half size
    text_map[200:206, 300:330] = 0.05  # faint: below the detector's own threshold
    windows = geometry.text_windows(text_map, (720, 1280, 3))
    assert len(windows) == 1
    x, y, w, h = windows[0]
    assert x <= 600 and y <= 400 and x + w >= 660 and y + h >= 412  # the blob, at full size
    assert w >= geometry.WINDOW_MIN_SIDE and h >= geometry.WINDOW_MIN_SIDE
    assert 0 <= x and 0 <= y and x + w <= 1280 and y + h <= 720


def test_a_window_reaching_past_the_border_is_detected_in(recognizer):
    bgr = np.full((720, 1280, 3), 128, dtype=np.uint8)
    assert recognizer._detect_in(bgr, (1200, 650, 100, 90), 1.0) == []


def test_overlapping_windows_merge_and_an_empty_map_has_none():
    text_map = np.zeros((360, 640), dtype=np.float32)
    text_map[100:104, 100:120] = 0.5
    text_map[100:104, 130:150] = 0.5  # next to the first: one window
    text_map[300:304, 550:570] = 0.5  # far away: a second one
    assert len(geometry.text_windows(text_map, (720, 1280, 3))) == 2
    assert geometry.text_windows(np.zeros((360, 640), dtype=np.float32), (720, 1280, 3)) == []


def test_text_everywhere_means_scanning_the_whole_image():
    text_map = np.zeros((360, 640), dtype=np.float32)
    text_map[::40, ::40] = 0.5  # scattered text all over the picture
    assert geometry.text_windows(text_map, (720, 1280, 3)) is None
    assert geometry.text_windows(None, (720, 1280, 3)) is None


# -- OpenALPR: optional, cleanly unavailable -------------------------------------------------


def test_openalpr_without_bindings_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "openalpr", None)  # makes `import openalpr` fail
    with pytest.raises(EngineUnavailable, match="openalpr"):
        load_plate_recognizer("openalpr")


def test_openalpr_without_native_library_is_unavailable(monkeypatch):
    bindings = types.ModuleType("openalpr")

    class Alpr:  # what the ctypes bindings do when libopenalpr.so is missing
        def __init__(self, *args):
            raise OSError("libopenalpr.so.2: cannot open shared object file")

    bindings.Alpr = Alpr
    monkeypatch.setitem(sys.modules, "openalpr", bindings)
    with pytest.raises(EngineUnavailable, match="libopenalpr"):
        load_plate_recognizer("openalpr")


# -- grammars and lookalike fixing ---------------------------------------------------------


def test_lookalikes_are_fixed_only_where_the_template_demands():
    assert grammar.fix_to_template("0UPI442", "LLLDDDD") == "OUP1442"
    assert grammar.fix_to_template("RKO99AN", "LLDDDLL") == "RK099AN"
    # An O where the template wants a letter stays an O.
    assert grammar.fix_to_template("BA302OZ", "LLDDDLL") == "BA302OZ"
    assert grammar.fix_to_template("ABC123", "LLLDDDD") is None
    assert grammar.fix_to_template("ABCX234", "LLLDDDD") is None  # X has no digit lookalike


def test_fits_checks_each_position_class():
    assert grammar.fits("ABC1D23", "LLLDLDD")
    assert not grammar.fits("ABC1234", "LLLDLDD")
    assert not grammar.fits("ABC123", "LLLDDDD")


def test_mercosul_and_old_brazilian_plates_fit_the_br_grammar():
    assert grammar.grammar_readings("ABC1D23", "br")[0].text == "ABC1D23"
    assert grammar.grammar_readings("ABC1234", "br")[0].text == "ABC1234"
    best = grammar.grammar_readings("0UPI442", "br")[0]
    assert (best.text, best.region, best.swaps) == ("OUP1442", "br", 2)


def test_a_reading_that_fits_as_read_ranks_before_fixed_ones():
    readings = grammar.grammar_readings("RK099AN", "eu")
    assert readings[0].text == "RK099AN" and readings[0].swaps == 0
    assert all(r.prior <= readings[0].prior for r in readings)


def test_region_hint_limits_the_templates():
    assert {r.region for r in grammar.grammar_readings("AB123CD", "auto")} >= {"eu"}
    assert grammar.grammar_readings("AB123CD", "br") == []


@pytest.mark.parametrize("text", ["20140617", "2O140617", "12345678", "A", "ABCDEFGHIJ", "ABC-123"])
def test_dates_long_numbers_and_wrong_lengths_are_not_plate_shaped(text):
    assert not grammar.is_plate_shaped(text)


@pytest.mark.parametrize("text", ["789SJL", "FZRULZ", "RK099AN", "1234567", "CZTHEDA", "AB", "77"])
def test_plates_are_plate_shaped(text):
    assert grammar.is_plate_shaped(text)


def test_vanity_lengths_follow_the_region():
    assert grammar.is_plate_shaped("GO", "us") and grammar.is_plate_shaped("BIMMIAN", "eu")
    # Brazil issues only seven-character plates.
    assert not grammar.is_plate_shaped("GOBLUE", "br") and grammar.is_plate_shaped("ABC1D23", "br")


# -- vanity plates: all letters, all digits ---------------------------------------------------


def rendered_plate(text: str, plate_width: int = 260, font_size: int = 64) -> Image.Image:
    """A light plate with dark text on a darker car, drawn with Pillow's own font."""
    image = Image.new("RGB", (640, 400), (70, 80, 95))
    draw = ImageDraw.Draw(image)
    left = 320 - plate_width // 2
    draw.rectangle((left, 150, left + plate_width, 280), fill=(245, 245, 240), outline=(30, 30, 30), width=4)
    draw.text((320, 218), text, fill=(20, 30, 90), font=ImageFont.load_default(size=font_size), anchor="mm")
    return image


@pytest.mark.parametrize(
    "text", ["CZTHEDA", "GOBLUE", "HELLO", "AB12", "GOODLIFE", "GO", "4242", "77", "12345", "ZZ"]
)
def test_generated_vanity_plates_are_read_and_reported(recognizer, text):
    """All letters, all digits, two characters: read first and reported (a calibrated
    confidence above the engine's reporting floor, however rare the shape)."""
    reads = recognizer.recognize(rendered_plate(text))
    assert reads and reads[0].plate == text
    assert reads[0].confidence >= recognizer.min_confidence > 0
    box = reads[0].box
    assert 190 <= box.x + box.w / 2 <= 450 and 150 <= box.y + box.h / 2 <= 280


@needs_photos
@pytest.mark.parametrize("photo", ["us/car8.jpg", "eu/eu2.jpg"])  # FZRULZ, GWAGEN
def test_real_vanity_plates_are_read(recognizer, photo):
    image, _, plate = labelled(photo)
    assert plate.isalpha()
    assert recognizer.recognize(image)[0].plate == plate


# -- the learned candidate ranker ------------------------------------------------------------


def test_shipped_ranker_matches_the_features_and_round_trips(tmp_path):
    ranker = ranking.Ranker.shipped()
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(ranker.to_dict()))
    again = ranking.Ranker.load(path)
    rows = np.random.default_rng(0).normal(size=(5, len(ranking.FEATURES)))
    assert np.allclose(again.confidence(rows), ranker.confidence(rows))
    assert ((ranker.confidence(rows) >= 0) & (ranker.confidence(rows) <= 1)).all()


def test_a_ranker_for_other_features_is_refused(tmp_path):
    fields = ranking.Ranker.shipped().to_dict()
    fields["features"] = fields["features"][:-1]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(fields))
    with pytest.raises(ValueError, match="features"):
        ranking.Ranker.load(path)


def test_calibrated_confidence_grows_with_the_model_score():
    ranker = ranking.Ranker.shipped()
    raw = np.linspace(0, 1, 50)
    calibrated = np.interp(raw, ranker.calibration_in, ranker.calibration_out)
    assert (np.diff(calibrated) >= 0).all()


def test_text_features_see_lone_letters_and_rare_letters():
    features = dict(zip(ranking.TEXT_FEATURES, ranking.text_features("1O49338")))
    assert features["lone_letters"] == 1 and features["rare_letters"] == 1 and not features["digits_only"]
    features = dict(zip(ranking.TEXT_FEATURES, ranking.text_features("GO")))
    assert features["short"] and features["letters_only"]


# -- CTC reading on the plate alphabet ------------------------------------------------------


def frames(*columns: tuple[int, float, int, float]) -> np.ndarray:
    """Frames with probability p on one column and q on another (the rest spread evenly)."""
    rows = []
    for first, p, second, q in columns:
        row = np.full(len(PLATE_CHARS) + 2, (1.0 - p - q) / (len(PLATE_CHARS)), dtype=np.float32)
        row[first], row[second] = p, q
        rows.append(row)
    return np.array(rows)


A, B, ZERO, O = PLATE_CHARS.index("A"), PLATE_CHARS.index("B"), PLATE_CHARS.index("0"), PLATE_CHARS.index("O")


def test_decode_merges_repeats_and_drops_blanks_and_other_symbols():
    probs = frames(
        (A, 0.9, B, 0.05),
        (A, 0.8, B, 0.1),
        (BLANK, 0.9, A, 0.05),
        (A, 0.7, B, 0.1),
        (OTHER, 0.9, A, 0.01),
        (ZERO, 0.6, O, 0.3),
    )
    chars = decode(probs)
    assert text_of(chars) == "AA0"
    assert chars[0].prob == pytest.approx(0.9)
    assert (chars[2].runner_up, chars[2].runner_up_prob) == ("O", pytest.approx(0.3))


def test_alternatives_swap_in_runner_ups_most_probable_first():
    chars = decode(frames((A, 0.9, B, 0.05), (ZERO, 0.6, O, 0.35)))
    readings = alternatives(chars)
    assert readings[0][0] == "A0"
    assert readings[1][0] == "AO"
    assert [p for _, p in readings] == sorted((p for _, p in readings), reverse=True)
