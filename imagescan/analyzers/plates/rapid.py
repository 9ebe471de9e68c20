"""Default plate engine: RapidOCR (PP-OCR ONNX models shipped in the wheel) + plate rules.

Pipeline: the text detector finds text lines; lines of plate-like shape are cut
out of the full-resolution image with a margin and read by the text recogniser;
each line's readings become candidate plates that a learned ranker scores
(`ranking.py`), and the winning line's box is widened to the plate's outline.

The detector dominates the cost and grows with the pixels it sees. It first runs
on the image scaled to `quick_det_side` (enough for near, large plates); only when
that pass finds no plate it is sure of does it run again at up to `det_max_side`
and `det_max_pixels`, which small, far plates need, and then only on windows
around the faint text the first pass saw (the whole image as a last resort). The
recogniser always reads full-resolution crops. The detector model is the PP-OCRv4
mobile one when its wheel is installed (see `models.detector_model_path`).

Measured with bench/plates.py (see its docstring for the figures' meaning).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image

from imagescan.analyzers import Box, Candidate, PlateRead
from imagescan.analyzers.plates import geometry, grammar
from imagescan.analyzers.plates.models import DetectorInput, load_models
from imagescan.analyzers.plates.ranking import (
    MAX_CANDIDATES,
    LineGeometry,
    Ranker,
    line_features,
    reading_candidates,
)
from imagescan.analyzers.plates.reading import Folding

REC_HEIGHT = 48  # input height of the PP-OCR recogniser
MAX_REC_WIDTH = 480  # a plate line is short; wider lines are not plates
REC_BATCH = 6  # crops read together (of similar width, see _read)
# The recogniser's input value of each byte, (byte / 255 - 0.5) / 0.5, computed once
# with the same float32 operations as per pixel.
REC_INPUT = (np.arange(256, dtype=np.float32) / 255.0 - 0.5) / 0.5


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
        as text (see geometry.text_windows), and the whole image only when that still
        finds no plate of at least full_pass_below. False: always the whole image.
      det_max_upscale: images smaller than det_max_side are enlarged for the detector
        by at most this factor (1.0: never enlarged).
      max_regions: at most this many plate-shaped text lines are read per image.
      min_confidence: plates below this are not reported. Low: confidences are
        calibrated probabilities, and a clear vanity plate (all letters, like the
        words that are the commonest false plates) is often the only plate in a
        photo yet scores about 0.1; callers filter on confidence.
      extra_plate_confidence: plates after the best one need at least this.
      max_plates: at most this many plates per image.
      readings: each line is read from this many crops (different margins) and the
        readings vote; 1 is fastest.
      detector: "mobile" (PP-OCRv4 mobile detector from the rapidocr_onnxruntime
        wheel, about 3x faster), "small" (PP-OCRv6 small, shipped with rapidocr),
        or "auto" (mobile when installed, else small).
      ranker: a `ranking.Ranker` (default: the shipped, trained one).
    """

    name = "rapidocr"

    def __init__(
        self,
        region: str = "auto",
        threads: int = 1,
        det_max_side: int = 1280,
        max_regions: int = 12,
        min_confidence: float = 0.05,
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
        ranker: Ranker | None = None,
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
        self.readings = max(1, min(len(geometry.CROP_MARGINS), int(readings)))
        self.window_pass = bool(window_pass)
        self.full_pass_below = float(full_pass_below)
        self.ranker = ranker or Ranker.shipped()
        self._detector, self._recognizer = load_models(int(threads), detector)
        self._detector_input = DetectorInput(self._detector.get_preprocess())
        self._fold = Folding(list(self._recognizer.postprocess_op.character))
        # Called with (quad, candidate texts, feature rows) for every line read:
        # bench/train_plate_ranker.py collects its training data through it.
        self.observer = None

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
            windows = geometry.text_windows(text_map, bgr.shape) if self.window_pass else None
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
        margins = geometry.CROP_MARGINS[: self.readings]
        crops = [geometry.crop_line(bgr, quad, along) for along in margins for quad in quads]
        frame_probs = self._read(crops)
        reads = []
        for index, quad in enumerate(quads):
            readings = [
                reading_candidates(frame_probs[k * len(quads) + index], self.region) for k in range(len(margins))
            ]
            readings = [reading for reading in readings if reading]
            texts, rows = line_features(readings, LineGeometry.of(quad, bgr.shape, crops[index]))
            if self.observer is not None:
                self.observer(quad, texts, rows)
            if texts:
                reads.append(self._plate_read(texts, rows, geometry.plate_box(quad, bgr.shape)))
        return self._select(reads)

    def _plate_read(self, texts: list[str], rows: np.ndarray, box: Box) -> PlateRead:
        confidences = self.ranker.confidence(rows)
        order = np.argsort(-confidences, kind="stable")[:MAX_CANDIDATES]
        candidates = tuple(Candidate(texts[i], float(confidences[i])) for i in order)
        return PlateRead(candidates[0].plate, candidates[0].confidence, box, candidates)

    def _detect(self, bgr: np.ndarray, scale: float) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Text lines (quads in `bgr` pixels) and the detector's text probability map."""
        seen = (
            bgr
            if abs(scale - 1.0) < 0.01
            else cv2.resize(
                bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            )
        )
        batch = self._detector_input(seen)
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
        lines = [quad for quad in quads + geometry.joined_neighbours(quads) if geometry.plate_shaped_line(quad)]
        # Plate lines are short and compact; keep the most plate-like ones.
        lines.sort(key=geometry.line_shape_penalty)
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
            batch[i, :, :, :width] = np.take(REC_INPUT, resized.transpose(2, 0, 1))
        probs = self._recognizer.session(batch)
        folded = self._fold(probs)
        # Frames beyond a crop's own width are padding: cut them off.
        frames = folded.shape[1]
        return [f[: max(1, round(frames * w / batch.shape[3]))] for f, w in zip(folded, widths)]

    def _select(self, reads: list[PlateRead]) -> list[PlateRead]:
        reads = [r for r in reads if r.confidence >= self.min_confidence]
        reads.sort(key=lambda r: r.confidence, reverse=True)
        chosen: list[PlateRead] = []
        for read in reads:
            if chosen and read.confidence < self.extra_plate_confidence:
                break
            if any(geometry.overlap(read.box, other.box) > 0.3 or read.plate == other.plate for other in chosen):
                continue
            chosen.append(read)
            if len(chosen) == self.max_plates:
                break
        return chosen


__all__ = ["RapidOcrPlateRecognizer"]
