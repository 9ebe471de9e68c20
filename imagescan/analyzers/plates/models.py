"""Loading the PP-OCR text detector and recogniser from the installed wheels (no download)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

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
        # We scale the image for the detector ourselves (see RapidOcrPlateRecognizer._detect).
        "Det.limit_type": "max",
        "Det.limit_side_len": 100_000,
    }
    mobile_model = detector_model_path(detector)
    if mobile_model is not None:
        params["Det.model_path"] = str(mobile_model)
    try:
        ocr = RapidOCR(params=params)
        # rapidocr (pinned to 3.10.0 for this reason) builds its models lazily behind
        # these private loaders and has no public way to get the detector and the
        # recogniser's raw session without the whole OCR pipeline; the plate unit
        # tests load through them, so an upgrade that drops them fails there first.
        return ocr._load_det_model(), ocr._load_rec_model()
    except (OSError, RuntimeError, ValueError, AttributeError, KeyError) as error:
        raise EngineUnavailable(f"cannot load the RapidOCR models: {error}") from error


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
