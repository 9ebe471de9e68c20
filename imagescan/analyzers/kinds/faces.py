"""`faces`: the faces in the image, found and encoded by the engine FACE_ENGINE names.

The encodings go to the shared face index (which records matches both ways); the image record
keeps only each face's box, and `"matchable": false` on a face too small or blurred to be
encoded reliably (listed, never matched). Matches are computed when `/images/<digest>` is read.
"""

from __future__ import annotations

from ...faceindex import describe_face
from .. import FaceFound, FaceRecognizer, load_face_recognizer
from ..base import EngineAnalyzer


def engine_options(settings) -> dict:
    """The face engine's options that settings choose (only the dlib engine has any)."""
    if settings.face_engine != "dlib":
        return {}
    return {"max_side": settings.face_max_side, "shift": settings.face_encoding_shift}


class FacesAnalyzer(EngineAnalyzer):
    name = "faces"  # needs the pixels

    def load_engine(self, settings) -> FaceRecognizer:
        return load_face_recognizer(settings.face_engine, **engine_options(settings))

    def analyze(self, pixels) -> list[FaceFound]:
        return self.engine.detect(pixels)

    def record(self, sha256: str, finding: list[FaceFound]) -> dict:
        if finding:
            self.worker.face_index.add_image_faces(sha256, finding)
        return {"faces": [describe_face(face) for face in finding]}
