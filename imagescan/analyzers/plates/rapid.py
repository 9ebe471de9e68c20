"""Default plate engine: RapidOCR (PP-OCR ONNX models shipped in the wheel) + plate rules.

Pipeline: the text detector finds text lines; lines of plate-like shape are cut
out of the full-resolution image with a margin and read by the text recogniser;
readings are folded onto the plate alphabet, ranked with the region grammars
(`grammar.py`), and the winning line's box is widened to the plate's outline.

The detector dominates the cost and grows with the pixels it sees. It first runs
on the image scaled to `quick_det_side` (enough for near, large plates); only when
that pass finds no plate it is sure of does it run again at up to `det_max_side`
and `det_max_pixels`, which small, far plates need, and then only on windows
around the faint text the first pass saw (the whole image as a last resort). The
recogniser always reads full-resolution crops. The detector model is the PP-OCRv4
mobile one when its wheel is installed (see `detector_model_path`).

Measured with bench/plates.py (see its docstring for the figures' meaning).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from imagescan.analyzers import Box, Candidate, EngineUnavailable, PlateRead
from imagescan.analyzers.plates import grammar
from imagescan.analyzers.plates.reading import (
    BLANK,
    Folding,
    alternatives,
    decode,
    reading_probability,
    text_of,
)

log = logging.getLogger(__name__)

# Margin around a text line when cutting it out, in line heights: the detector's
# box sometimes clips the first or last character.
# Each extra reading of a line uses the next margin along the line.
CROP_MARGINS = (0.15, 0.35, 0.05)
CROP_ACROSS = 0.1
REC_HEIGHT = 48  # input height of the PP-OCR recogniser
MAX_REC_WIDTH = 480  # a plate line is short; wider lines are not plates
REC_BATCH = 6  # crops read together (of similar width, see _read)
# Prior of a reading that fits no template of the region (US vanity plates exist).
OFF_GRAMMAR_PRIOR = 0.3
# A plate-shaped reading without a digit that fits no template is usually a word.
LETTERS_ONLY_PRIOR = 0.5
# Dropping a stray character (state sticker, frame screw, badge) costs at most this.
TRIM_PRIOR = 0.7


class RapidOcrPlateRecognizer:
    """Plate recogniser on RapidOCR + onnxruntime. Load once, call `recognize` many times.

    Options:
      region: "auto" (default), "us", "eu" or "br"; ranks readings by that grammar.
      threads: onnxruntime intra-op threads (1: one worker uses one core).
      det_max_side: longest side, in pixels, the text detector sees (speed/recall trade-off).
      det_max_pixels: and at most this many pixels (the detector's cost grows with them).
      quick_det_side: first pass with the detector at this longest side; the sharp
        pass (det_max_side) runs only when the first found no plate of at least
        quick_pass_confidence. 0 disables the quick pass.
      window_pass: the sharp pass scans only windows around what the quick pass saw
        as text (see _text_windows), and the whole image only when that still finds
        no plate of at least full_pass_below. False: always the whole image.
      det_max_upscale: images smaller than det_max_side are enlarged for the detector
        by at most this factor (1.0: never enlarged).
      max_regions: at most this many plate-shaped text lines are read per image.
      min_confidence: plates below this are not reported.
      extra_plate_confidence: plates after the best one need at least this.
      max_plates: at most this many plates per image.
      readings: each line is read from this many crops (different margins) and the
        readings vote; 1 is fastest.
      detector: "mobile" (PP-OCRv4 mobile detector from the rapidocr_onnxruntime
        wheel, about 3x faster), "small" (PP-OCRv6 small, shipped with rapidocr),
        or "auto" (mobile when installed, else small).
    """

    name = "rapidocr"

    def __init__(
        self,
        region: str = "auto",
        threads: int = 1,
        det_max_side: int = 1280,
        max_regions: int = 12,
        min_confidence: float = 0.2,
        extra_plate_confidence: float = 0.75,
        max_plates: int = 4,
        readings: int = 3,
        det_max_upscale: float = 1.0,
        det_max_pixels: int = 1280 * 736,
        quick_det_side: int = 800,
        quick_pass_confidence: float = 0.9,
        detector: str = "auto",
        window_pass: bool = True,
        full_pass_below: float = 0.35,
    ) -> None:
        region = (region or "auto").lower()
        if region not in grammar.REGIONS:
            raise ValueError(f"unknown plate region {region!r}; choose from {', '.join(grammar.REGIONS)}")
        self.region = region
        self.det_max_side = int(det_max_side)
        self.max_regions = int(max_regions)
        self.min_confidence = float(min_confidence)
        self.extra_plate_confidence = float(extra_plate_confidence)
        self.max_plates = int(max_plates)
        self.det_max_upscale = max(1.0, float(det_max_upscale))
        self.det_max_pixels = int(det_max_pixels)
        self.quick_det_side = int(quick_det_side)
        self.quick_pass_confidence = float(quick_pass_confidence)
        self.readings = max(1, min(len(CROP_MARGINS), int(readings)))
        self.window_pass = bool(window_pass)
        self.full_pass_below = float(full_pass_below)
        self._detector, self._recognizer = _load_models(int(threads), detector)
        self._fold = Folding(list(self._recognizer.postprocess_op.character))

    def recognize(self, image: Image.Image) -> list[PlateRead]:
        """Plates in the image, best first; [] when none. An engine failure (a broken model,
        out of memory) raises: it is a failed attempt to retry, not an image without plates."""
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        if min(bgr.shape[:2]) < 16:
            return []
        return self._recognize(bgr)

    # -- pipeline -----------------------------------------------------------------

    def _recognize(self, bgr: np.ndarray) -> list[PlateRead]:
        """A quick pass with the detector on a small image; a sharper pass only when
        it found no plate it is sure of (small, far plates need the full resolution).

        The sharper pass looks only at windows around what the quick pass saw as
        text, however faint; the whole image only when those windows cover most of it.
        """
        full_scale = self._det_scale(bgr.shape, self.det_max_side)
        quick_scale = self._det_scale(bgr.shape, self.quick_det_side) if self.quick_det_side else full_scale
        quads, text_map = self._detect(bgr, quick_scale)
        reads = self._reads_of(bgr, self._plate_lines(quads))
        sure = reads and reads[0].confidence >= self.quick_pass_confidence
        if quick_scale < 0.9 * full_scale and not sure:
            windows = _text_windows(text_map, bgr.shape) if self.window_pass else None
            if windows is None:
                # The full pass sees everything the quick one did, only sharper.
                reads = self._reads_of(bgr, self._plate_lines(self._detect(bgr, full_scale)[0]))
            else:
                # A window lacks context and the detector sometimes misses a line
                # there that it found in the whole image: keep the quick reads too.
                quads = [quad for window in windows for quad in self._detect_in(bgr, window, full_scale)]
                reads = self._select(reads + self._reads_of(bgr, self._plate_lines(quads)))
                if not reads or reads[0].confidence < self.full_pass_below:
                    # Still nothing likely: a plate too faint for the quick pass's map.
                    full = self._reads_of(bgr, self._plate_lines(self._detect(bgr, full_scale)[0]))
                    reads = self._select(reads + full)
        return reads

    def _det_scale(self, shape: tuple[int, ...], max_side: int) -> float:
        height, width = shape[:2]
        return min(
            max_side / max(height, width),
            math.sqrt(self.det_max_pixels / (height * width)),
            self.det_max_upscale,
        )

    def _reads_of(self, bgr: np.ndarray, quads: list[np.ndarray]) -> list[PlateRead]:
        if not quads:
            return []
        margins = CROP_MARGINS[: self.readings]
        crops = [_crop_line(bgr, quad, along) for along in margins for quad in quads]
        frame_probs = self._read(crops)
        reads = []
        for index, quad in enumerate(quads):
            votes = [self._candidates(frame_probs[k * len(quads) + index]) for k in range(len(margins))]
            candidates = _vote(votes)
            if candidates:
                reads.append(_plate_read(candidates, _plate_box(quad, bgr.shape)))
        return self._select(reads)

    def _detect(self, bgr: np.ndarray, scale: float) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Text lines (quads in `bgr` pixels) and the detector's text probability map."""
        seen = (
            bgr
            if abs(scale - 1.0) < 0.01
            else cv2.resize(
                bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            )
        )
        batch = self._detector.get_preprocess()(seen)
        if batch is None:
            return [], None
        prediction = self._detector.session(batch)
        boxes, _ = self._detector.postprocess_op(prediction, seen.shape[:2])
        to_bgr = np.float32(bgr.shape[1] / seen.shape[1])
        quads = [np.asarray(quad, dtype=np.float32) * to_bgr for quad in boxes]
        return quads, prediction[0, 0]

    def _detect_in(
        self, bgr: np.ndarray, window: tuple[int, int, int, int], scale: float
    ) -> list[np.ndarray]:
        x, y, w, h = window
        crop = bgr[y : y + h, x : x + w]
        h, w = crop.shape[:2]
        # Padded, not stretched, to the multiple of 32 the detector's input needs.
        step = math.ceil(32 / scale)
        padded = np.zeros((math.ceil(h / step) * step, math.ceil(w / step) * step, 3), np.uint8)
        padded[:h, :w] = crop
        quads, _ = self._detect(padded, scale)
        return [quad + np.float32([x, y]) for quad in quads]

    def _plate_lines(self, quads: list[np.ndarray]) -> list[np.ndarray]:
        """The plate-shaped text lines to read, most plate-like first."""
        lines = [quad for quad in quads + _joined_neighbours(quads) if _plate_shaped_line(quad)]
        # Plate lines are short and compact; keep the most plate-like ones.
        lines.sort(key=_line_shape_penalty)
        return lines[: self.max_regions]

    def _read(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Folded per-frame probabilities (frames, 38) for each crop.

        The recogniser's cost grows with the batch's width, and every crop of a
        batch is padded to the widest one: crops of similar width are read together.
        """
        widths = [
            min(MAX_REC_WIDTH, max(REC_HEIGHT, math.ceil(REC_HEIGHT * c.shape[1] / c.shape[0])))
            for c in crops
        ]
        order = sorted(range(len(crops)), key=widths.__getitem__)
        results: list[np.ndarray | None] = [None] * len(crops)
        for start in range(0, len(order), REC_BATCH):
            batch_indices = order[start : start + REC_BATCH]
            batch_results = self._read_batch(
                [crops[i] for i in batch_indices], [widths[i] for i in batch_indices]
            )
            for index, result in zip(batch_indices, batch_results):
                results[index] = result
        return results

    def _read_batch(self, crops: list[np.ndarray], widths: list[int]) -> list[np.ndarray]:
        batch = np.zeros((len(crops), 3, REC_HEIGHT, max(widths)), dtype=np.float32)
        for i, (crop, width) in enumerate(zip(crops, widths)):
            resized = cv2.resize(crop, (width, REC_HEIGHT), interpolation=cv2.INTER_CUBIC)
            batch[i, :, :, :width] = (resized.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
        probs = self._recognizer.session(batch)
        folded = self._fold(probs)
        # Frames beyond a crop's own width are padding: cut them off.
        frames = folded.shape[1]
        return [f[: max(1, round(frames * w / batch.shape[3]))] for f, w in zip(folded, widths)]

    def _candidates(self, frame_probs: np.ndarray) -> list[tuple[str, float]]:
        """Plate readings of one line with scores, best first (at most 8).

        A reading's score is the geometric mean of the best reading's character
        probabilities (so long plates are not punished for their length) times how
        much less likely this variant is than the best one, times the grammar prior.
        """
        chars = decode(frame_probs)
        if not chars or grammar.looks_like_date(text_of(chars)):
            return []
        best_prob = reading_probability(chars)
        line_quality = best_prob ** (1.0 / len(chars))
        scored: dict[str, float] = {}
        for text, prob in alternatives(chars):
            for variant, variant_prob in _trimmed(text, prob, [c.prob for c in chars]):
                if not grammar.is_plate_shaped(variant):
                    continue
                relative = line_quality * variant_prob / max(best_prob, 1e-12)
                for score_text, score in self._grammar_scores(variant, relative):
                    if score > scored.get(score_text, 0.0):
                        scored[score_text] = score
        ranked = sorted(scored.items(), key=lambda item: item[1], reverse=True)
        return ranked[:8]

    def _grammar_scores(self, text: str, prob: float) -> list[tuple[str, float]]:
        matches = grammar.grammar_readings(text, self.region)
        scores = [(m.text, prob * m.prior) for m in matches]
        if not any(m.swaps == 0 for m in matches):
            # Words (FEDEX, PRIVATE) are the usual false plates: letters only costs more.
            prior = OFF_GRAMMAR_PRIOR * (LETTERS_ONLY_PRIOR if text.isalpha() else 1.0)
            scores.append((text, prob * prior))
        return scores

    def _select(self, reads: list[PlateRead]) -> list[PlateRead]:
        reads = [r for r in reads if r.confidence >= self.min_confidence]
        reads.sort(key=lambda r: r.confidence, reverse=True)
        chosen: list[PlateRead] = []
        for read in reads:
            if chosen and read.confidence < self.extra_plate_confidence:
                break
            if any(_overlap(read.box, other.box) > 0.3 or read.plate == other.plate for other in chosen):
                continue
            chosen.append(read)
            if len(chosen) == self.max_plates:
                break
        return chosen


# -- helpers --------------------------------------------------------------------------


def _load_models(threads: int, detector: str = "auto"):
    """The detector and recogniser from the installed wheels (no download), threads limited."""
    try:
        from rapidocr import RapidOCR
    except ImportError as error:  # pragma: no cover - rapidocr is a pinned dependency
        raise EngineUnavailable(f"rapidocr is not installed: {error}") from error
    params = {
        # The angle classifier turns upright plates upside down; plates are upright.
        "Global.use_cls": False,
        "Global.log_level": "error",
        "EngineConfig.onnxruntime.intra_op_num_threads": max(1, threads),
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        # We scale the image for the detector ourselves (see _detect).
        "Det.limit_type": "max",
        "Det.limit_side_len": 100_000,
    }
    mobile_model = detector_model_path(detector)
    if mobile_model is not None:
        params["Det.model_path"] = str(mobile_model)
    try:
        ocr = RapidOCR(params=params)
        # rapidocr 3.10 builds its models lazily behind these loaders; we need the
        # detector and the recogniser's raw session, not the whole OCR pipeline.
        return ocr._load_det_model(), ocr._load_rec_model()
    except Exception as error:
        raise EngineUnavailable(f"cannot load the RapidOCR models: {error}") from error


# The PP-OCRv4 mobile text detector: about a third of the cost of rapidocr 3.x's
# PP-OCRv6 small one at the same resolution and as good on plates. Only the older
# rapidocr_onnxruntime wheel ships it; we use its model file, never its code.
MOBILE_DETECTOR_PACKAGE = "rapidocr_onnxruntime"
MOBILE_DETECTOR_FILE = "models/ch_PP-OCRv4_det_infer.onnx"
DETECTORS = ("auto", "mobile", "small")


def detector_model_path(detector: str) -> Path | None:
    """The mobile detector's file, or None for rapidocr's own detector.

    "auto" takes the mobile one when its wheel is installed; "mobile" insists on it.
    """
    detector = (detector or "auto").lower()
    if detector not in DETECTORS:
        raise ValueError(f"unknown text detector {detector!r}; choose from {', '.join(DETECTORS)}")
    if detector == "small":
        return None
    # find_spec locates the package without importing it (its code needs other packages).
    spec = importlib.util.find_spec(MOBILE_DETECTOR_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / MOBILE_DETECTOR_FILE
        if path.is_file():
            return path
    if detector == "mobile":
        raise EngineUnavailable(
            f"the mobile text detector needs the {MOBILE_DETECTOR_PACKAGE} wheel "
            f"(pip install --no-deps); {MOBILE_DETECTOR_FILE} not found"
        )
    log.info("%s is not installed: using rapidocr's own, slower, text detector", MOBILE_DETECTOR_PACKAGE)
    return None


# The sharper detector pass looks at windows around faint text in the quick pass's
# probability map: map values above WINDOW_TEXT_PROB, each grown by WINDOW_MARGIN
# times its height (at least WINDOW_MIN_MARGIN pixels) and to at least
# WINDOW_MIN_SIDE pixels (the detector misses lines in windows without context).
# When the windows cover more than WINDOW_MAX_SHARE of the image, the whole image
# is cheaper to scan. Fitted on the tune split of bench/plates.py.
WINDOW_TEXT_PROB = 0.03
WINDOW_MARGIN = 2.0
WINDOW_MIN_MARGIN = 48
WINDOW_MIN_SIDE = 256
WINDOW_MAX_SHARE = 0.5


def _text_windows(
    text_map: np.ndarray | None, shape: tuple[int, ...]
) -> list[tuple[int, int, int, int]] | None:
    """Windows (x, y, w, h in image pixels) around faint text; None: scan the whole image."""
    if text_map is None:
        return None
    height, width = shape[:2]
    to_x, to_y = width / text_map.shape[1], height / text_map.shape[0]
    mask = (text_map > WINDOW_TEXT_PROB).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    rects = []
    for x, y, w, h, _area in stats[1:count]:
        x0, x1, y0, y1 = x * to_x, (x + w) * to_x, y * to_y, (y + h) * to_y
        margin = max(WINDOW_MIN_MARGIN, WINDOW_MARGIN * (y1 - y0))
        grow_x = max(margin, (WINDOW_MIN_SIDE - (x1 - x0)) / 2)
        grow_y = max(margin, (WINDOW_MIN_SIDE - (y1 - y0)) / 2)
        rects.append(
            [max(0, x0 - grow_x), max(0, y0 - grow_y), min(width, x1 + grow_x), min(height, y1 + grow_y)]
        )
    rects = _merged(rects)
    windows = [(int(x0), int(y0), math.ceil(x1 - x0), math.ceil(y1 - y0)) for x0, y0, x1, y1 in rects]
    if sum(w * h for _, _, w, h in windows) > WINDOW_MAX_SHARE * width * height:
        return None
    return [window for window in windows if min(window[2:]) >= 16]


def _merged(rects: list[list[float]]) -> list[list[float]]:
    """Overlapping rectangles (x0, y0, x1, y1) joined until none overlap."""
    rects = [list(r) for r in rects]
    changed = True
    while changed:
        changed = False
        for i in range(len(rects)):
            for j in range(len(rects) - 1, i, -1):
                a, b = rects[i], rects[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    rects[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del rects[j]
                    changed = True
    return rects


def _joined_neighbours(quads: list[np.ndarray]) -> list[np.ndarray]:
    """Pairs of lines side by side with the same height, joined: a plate such as
    `789 SJL` or `VW 4X4-WP` is sometimes detected as two lines."""
    joined = []
    boxes = [(q.min(axis=0), q.max(axis=0)) for q in quads]
    for i, (low_a, high_a) in enumerate(boxes):
        for j, (low_b, high_b) in enumerate(boxes):
            if i == j or low_b[0] < low_a[0]:
                continue
            height_a, height_b = high_a[1] - low_a[1], high_b[1] - low_b[1]
            height = max(height_a, height_b)
            same_height = min(height_a, height_b) > 0.75 * height
            same_row = abs((low_a[1] + high_a[1]) - (low_b[1] + high_b[1])) / 2 < 0.3 * height
            gap = low_b[0] - high_a[0]
            if same_height and same_row and -0.2 * height < gap < 1.2 * height:
                low, high = np.minimum(low_a, low_b), np.maximum(high_a, high_b)
                joined.append(np.array([low, [high[0], low[1]], high, [low[0], high[1]]], dtype=np.float32))
    return joined


def _plate_shaped_line(quad: np.ndarray) -> bool:
    width, height = _quad_size(quad)
    return height >= 7 and 0.8 <= width / max(height, 1.0) <= 14


def _line_shape_penalty(quad: np.ndarray) -> float:
    width, height = _quad_size(quad)
    aspect = width / max(height, 1.0)
    return abs(math.log(aspect / 3.5))


def _quad_size(quad: np.ndarray) -> tuple[float, float]:
    width = max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]))
    height = max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))
    return float(width), float(height)


def _expanded(quad: np.ndarray, along: float, across: float) -> np.ndarray:
    """The quad grown by `along` x its height at both ends and `across` x its height above and below."""
    quad = quad.astype(np.float32)
    top_left, top_right, bottom_right, bottom_left = quad
    right = (top_right - top_left + bottom_right - bottom_left) / 2
    down = (bottom_left - top_left + bottom_right - top_right) / 2
    height = np.linalg.norm(down)
    right_unit = right / max(np.linalg.norm(right), 1e-6)
    down_unit = down / max(height, 1e-6)
    dx, dy = right_unit * along * height, down_unit * across * height
    return np.array(
        [top_left - dx - dy, top_right + dx - dy, bottom_right + dx + dy, bottom_left - dx + dy],
        dtype=np.float32,
    )


def _crop_line(bgr: np.ndarray, quad: np.ndarray, along: float) -> np.ndarray:
    """The text line straightened out of the full-resolution image, with a margin."""
    from rapidocr.utils.process_img import get_rotate_crop_image

    crop = get_rotate_crop_image(bgr, _expanded(quad, along, CROP_ACROSS))
    if crop.shape[0] > crop.shape[1] * 1.5:  # the helper turned a tall crop: undo
        crop = np.rot90(crop, -1)
    return np.ascontiguousarray(crop)


def _plate_box(quad: np.ndarray, shape: tuple[int, ...]) -> Box:
    """Axis-aligned box around the plate: the text line widened to the plate's border."""
    grown = _expanded(quad, PLATE_ALONG, PLATE_ACROSS)
    height, width = shape[:2]
    x0, y0 = (float(v) for v in np.clip(grown.min(axis=0), 0, [width - 1, height - 1]))
    x1, y1 = (float(v) for v in np.clip(grown.max(axis=0), 0, [width, height]))
    return Box(round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)))


# How much wider than its text line a plate is, in text heights (fitted on the tune split).
PLATE_ALONG, PLATE_ACROSS = 0.0, 0.05


def _trimmed(text: str, prob: float, char_probs: list[float]) -> list[tuple[str, float]]:
    """The reading, and for long readings the reading without one stray character.

    The first or last character may be a sticker or a screw (6+ characters); an
    inner one a badge between the groups, such as the round sticker on Czech
    plates read as `8` (8+ characters). The less sure the recogniser was of a
    character, the likelier it is stray.
    """
    variants = [(text, prob)]
    if len(text) < 6 or text.isdigit():
        return variants
    droppable = range(len(text)) if len(text) >= 8 else (0, len(text) - 1)
    for i in droppable:
        stray = TRIM_PRIOR * (1.0 - 0.5 * char_probs[i])
        variants.append((text[:i] + text[i + 1 :], prob * stray))
    return variants


def _vote(readings: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    """Candidates of several readings of one line: mean score over the readings."""
    totals: dict[str, float] = {}
    for candidates in readings:
        for text, score in candidates:
            totals[text] = totals.get(text, 0.0) + score / len(readings)
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:8]


def _plate_read(candidates: list[tuple[str, float]], box: Box) -> PlateRead:
    best, score = candidates[0]
    return PlateRead(
        plate=best,
        confidence=_confidence(score),
        box=box,
        candidates=tuple(Candidate(text, _confidence(s)) for text, s in candidates),
    )


# Raw score -> share of plates with that score that were right, on the tune split
# (bench/plates.py, about 250 readings): scores are ranked well but the middle
# range is under-confident.
CALIBRATION_SCORES = (0.0, 0.15, 0.4, 0.575, 0.72, 0.97, 1.0)
CALIBRATION_PRECISION = (0.0, 0.3, 0.55, 0.73, 0.92, 0.98, 0.99)


def _confidence(score: float) -> float:
    """The raw score mapped to a calibrated probability that the reading is right."""
    return float(np.interp(min(1.0, max(0.0, score)), CALIBRATION_SCORES, CALIBRATION_PRECISION))


def _overlap(a: Box, b: Box) -> float:
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    return inter / max(1, min(a.w * a.h, b.w * b.h))


__all__ = ["BLANK", "RapidOcrPlateRecognizer", "reading_probability", "text_of"]
