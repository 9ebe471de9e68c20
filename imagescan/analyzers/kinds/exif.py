"""`exif`: the camera (make, model, time taken) and the GPS position the photo's EXIF gives."""

from __future__ import annotations

from imagescan import imaging

from ..base import Analyzer, Need


class ExifAnalyzer(Analyzer):
    name = "exif"
    needs = Need.EXIF
    fields = ("exif", "geotag")  # the camera, and where the photo was taken (None: unknown)

    def analyze(self, exif) -> dict:
        return {"exif": imaging.read_camera(exif), "geotag": imaging.read_gps(exif)}

    def record(self, sha256: str, finding: dict) -> dict:
        return finding
