"""`plates`: the license plates in the image, read by the engine PLATE_ENGINE names.

The plates are stored with the image record; the image store's save indexes them (exact and
fuzzy plate search) in the same atomic write, from the `plates` field.
"""

from __future__ import annotations

from .. import PlateRead, PlateRecognizer, load_plate_recognizer
from ..base import EngineAnalyzer


class PlatesAnalyzer(EngineAnalyzer):
    name = "plates"  # needs the pixels

    def load_engine(self, settings) -> PlateRecognizer:
        return load_plate_recognizer(settings.plate_engine, region=settings.plate_region)

    def analyze(self, pixels) -> list[PlateRead]:
        return self.engine.recognize(pixels)

    def record(self, sha256: str, finding: list[PlateRead]) -> dict:
        return {"plates": [plate.to_dict() for plate in finding]}
