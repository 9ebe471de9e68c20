"""The analysis of one image: decode, EXIF facts, plates, faces; then one atomic write."""

from __future__ import annotations

import logging

from imagescan import imaging

from .metrics import timed_step
from .services import WorkerServices

log = logging.getLogger("imagescan.worker.pipeline")


class OriginalMissing(RuntimeError):
    """The work message names an image whose bytes are not in the blob store."""


def analyze(services: WorkerServices, sha256: str) -> dict:
    """The analysis results (exif, geotag, plates, faces) plus the decoded image's facts."""
    data = services.blobs.get(sha256)
    if data is None:
        raise OriginalMissing(f"the original of {sha256} is not in the blob store")
    with timed_step("decode"):
        decoded = imaging.decode(data, services.settings.max_image_pixels)
    with timed_step("exif"):
        camera, geotag = imaging.read_camera(decoded.exif), imaging.read_gps(decoded.exif)
    with timed_step("plates"):
        plates = services.plates.recognize(decoded.pixels)
    with timed_step("faces"):
        faces = services.faces.detect(decoded.pixels)
    return {
        "info": decoded.info,
        "camera_label": imaging.camera_label(camera),
        "results": {
            "exif": camera,
            "geotag": geotag,
            "plates": [plate.to_dict() for plate in plates],
            "faces": faces,  # FaceFound objects; the caller indexes them and stores their boxes
        },
    }
