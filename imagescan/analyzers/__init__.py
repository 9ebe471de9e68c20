"""Recognition engines behind small interfaces, chosen by configuration.

Every engine takes a decoded RGB Pillow image (EXIF orientation already applied)
and returns plain data. Engines are imported lazily by name, so a process that
never recognises anything (the REST service) never loads one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in pixels of the oriented image; (x, y) is the top-left corner."""

    x: int
    y: int
    w: int
    h: int

    def to_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class Candidate:
    plate: str
    confidence: float

    def to_dict(self) -> dict:
        return {"plate": self.plate, "confidence": round(self.confidence, 4)}


@dataclass(frozen=True)
class PlateRead:
    """One plate found in an image: the best reading, where it is, and the alternatives."""

    plate: str  # normalised: upper case, letters and digits only
    confidence: float  # 0..1
    box: Box
    candidates: tuple[Candidate, ...] = ()  # best first; includes the best reading

    def to_dict(self) -> dict:
        return {
            "plate": self.plate,
            "confidence": round(self.confidence, 4),
            "box": self.box.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass(frozen=True)
class FaceFound:
    box: Box
    encoding: tuple[float, ...] = field(repr=False)  # 128 floats from the face embedding
    # False for a face too small or too blurred to encode reliably: it is listed with the
    # image's faces but must never be matched (the face index skips it).
    matchable: bool = True


class PlateRecognizer(Protocol):
    """Constructed with keyword options; every plate engine takes `region` (auto, us, eu, br)."""

    name: str

    def recognize(self, image: Image.Image) -> list[PlateRead]:
        """Plates in the image, best first. Never raises for an ordinary image."""


class FaceRecognizer(Protocol):
    name: str

    def detect(self, image: Image.Image) -> list[FaceFound]:
        """Faces in the image with their encodings."""


class EngineUnavailable(RuntimeError):
    """The engine's native library or models cannot be loaded on this machine."""


class NoPlates:
    name = "none"

    def __init__(self, region: str = "auto"):  # every plate engine takes the region hint
        self.region = region

    def recognize(self, image: Image.Image) -> list[PlateRead]:
        return []


class NoFaces:
    name = "none"

    def detect(self, image: Image.Image) -> list[FaceFound]:
        return []


# name -> "module:factory"; the factory raises EngineUnavailable when it cannot load.
PLATE_ENGINES = {
    "rapidocr": "imagescan.analyzers.plates.rapid:RapidOcrPlateRecognizer",
    "openalpr": "imagescan.analyzers.plates.openalpr:OpenAlprPlateRecognizer",
    "none": "imagescan.analyzers:NoPlates",
}
FACE_ENGINES = {
    "dlib": "imagescan.analyzers.faces:DlibFaceRecognizer",
    "none": "imagescan.analyzers:NoFaces",
}


def _construct(spec: str, **options):
    module_name, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(**options) if options else factory()


def load_plate_recognizer(name: str = "rapidocr", **options) -> PlateRecognizer:
    """OpenALPR is only an option: its native library is missing on most systems."""
    if name not in PLATE_ENGINES:
        raise ValueError(f"unknown plate engine {name!r}; choose from {', '.join(PLATE_ENGINES)}")
    return _construct(PLATE_ENGINES[name], **options)


def load_face_recognizer(name: str = "dlib", **options) -> FaceRecognizer:
    if name not in FACE_ENGINES:
        raise ValueError(f"unknown face engine {name!r}; choose from {', '.join(FACE_ENGINES)}")
    return _construct(FACE_ENGINES[name], **options)
