"""Loading the PP-OCR text detector and recogniser from the installed wheels (no download)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from imagescan.analyzers import EngineUnavailable

log = logging.getLogger(__name__)

# The PP-OCRv4 mobile text detector: about a third of the cost of rapidocr 3.x's
# PP-OCRv6 small one at the same resolution and as good on plates. Only the older
# rapidocr_onnxruntime wheel ships it; we use its model file, never its code.
MOBILE_DETECTOR_PACKAGE = "rapidocr_onnxruntime"
MOBILE_DETECTOR_FILE = "models/ch_PP-OCRv4_det_infer.onnx"
DETECTORS = ("auto", "mobile", "small")


def load_models(threads: int, detector: str = "auto"):
    """The detector and recogniser, onnxruntime threads limited."""
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
        # rapidocr turns onnxruntime's memory arena off; without it every run allocates its
        # buffers anew, which made the detector a quarter slower.
        "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
        # We scale the image for the detector ourselves (see RapidOcrPlateRecognizer._detect).
        "Det.limit_type": "max",
        "Det.limit_side_len": 100_000,
    }
    mobile_model = detector_model_path(detector)
    if mobile_model is not None:
        params["Det.model_path"] = str(mobile_model)
    try:
        return loaded_stages(RapidOCR(params=params))
    except (OSError, RuntimeError, ValueError, AttributeError, KeyError) as error:
        raise EngineUnavailable(f"cannot load the RapidOCR models: {error}") from error


def loaded_stages(ocr):
    """The detector and recogniser of a RapidOCR engine, loaded through its public call.

    rapidocr 3.10 loads each stage's model on the first call that uses it and keeps it as
    `text_det` / `text_rec`; one call of detection alone and one of recognition alone (its
    documented stage-by-stage use) on a blank image load both. We then run their ONNX
    sessions ourselves (our own scaling, batched crops), for which rapidocr has no public
    call: so rapidocr stays pinned, and tests/unit/test_plate_models.py checks the pinned
    version and the attributes the plate engine uses, before an upgrade can break it.
    """
    blank = np.full((64, 64, 3), 255, dtype=np.uint8)
    ocr(blank, use_det=True, use_cls=False, use_rec=False)
    ocr(blank, use_det=False, use_cls=False, use_rec=True)
    if ocr.text_det is None or ocr.text_rec is None:
        raise RuntimeError("rapidocr did not load its text detector and recogniser")
    return ocr.text_det, ocr.text_rec


class DetectorInput:
    """The detector's input batch for a BGR image, as rapidocr's own preprocessing makes it.

    rapidocr scales the image to multiples of 32 pixels and normalises it in float64
    ((pixel / 255 - mean) / std, cast to float32), about a seventh of a quick detector pass. The
    normalised value depends only on the byte and the channel, so one lookup table per
    channel, filled by rapidocr's own normalisation, gives the same numbers for a fraction
    of the cost (tests/unit/test_plate_models.py compares the two).
    """

    def __init__(self, preprocess) -> None:
        self._resize = preprocess.resize
        values = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
        table = np.asarray(preprocess.normalize(values), dtype=np.float32)[:, 0, :]  # (256, 3)
        self._tables = [np.ascontiguousarray(table[:, channel]) for channel in range(3)]
        self._same = all(np.array_equal(self._tables[0], other) for other in self._tables[1:])

    def __call__(self, bgr: np.ndarray) -> np.ndarray | None:
        """(1, 3, height, width) float32, or None when the image is too small to scale."""
        resized = self._resize(bgr)
        if resized is None:
            return None
        planes = np.ascontiguousarray(resized.transpose(2, 0, 1))
        if self._same:
            return np.take(self._tables[0], planes)[None]
        return np.stack([np.take(table, plane) for table, plane in zip(self._tables, planes)])[None]


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
