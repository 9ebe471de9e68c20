"""The analysis of one image: decode it once, run the configured analyzers (ANALYZERS, in its
order) on the view each needs, then turn their findings into the fields of the image record."""

from __future__ import annotations

import logging

from imagescan import imaging
from imagescan.analyzers.base import Need

from .metrics import timed_step
from .services import WorkerServices

log = logging.getLogger("imagescan.worker.pipeline")


class OriginalMissing(RuntimeError):
    """The work message names an image whose bytes are not in the blob store."""


def analyze(services: WorkerServices, sha256: str) -> dict:
    """The decoded image's facts (`info`) and each analyzer's finding (`findings`, by name)."""
    data = services.blobs.get(sha256)
    if data is None:
        raise OriginalMissing(f"the original of {sha256} is not in the blob store")
    with timed_step("decode"):
        decoded = imaging.decode(data, services.settings.max_image_pixels)
    views = {Need.PIXELS: decoded.pixels, Need.EXIF: decoded.exif, Need.ORIGINAL: data}
    findings = {}
    for analyzer in services.analyzers:
        with timed_step(analyzer.name):
            findings[analyzer.name] = analyzer.analyze(views[analyzer.needs])
    return {"info": decoded.info, "findings": findings}


def record(services: WorkerServices, sha256: str, findings: dict) -> dict:
    """The analysis as the image record stores it: every analyzer's fields, its indexes written."""
    results = {}
    for analyzer in services.analyzers:
        results.update(analyzer.record(sha256, findings[analyzer.name]))
    return results


def camera_label(results: dict) -> str | None:
    """`Make - Model` for the image-service statistics (when the exif analyzer ran)."""
    return imaging.camera_label(results.get("exif") or {})
