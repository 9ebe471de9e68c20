"""`faces`: the faces in the image, found and encoded by the engine FACE_ENGINE names.

The encodings go to the shared face index (which records matches both ways); the image record
keeps only each face's box. Matches are computed when `/images/<digest>` is read.
"""

from __future__ import annotations

from .. import FaceFound, load_face_recognizer
from ..base import Analyzer, Need


class FacesAnalyzer(Analyzer):
    name = "faces"
    needs = Need.PIXELS

    def __init__(self, worker):
        super().__init__(worker)
        settings = worker.settings
        options = {"max_side": settings.face_max_side} if settings.face_engine == "dlib" else {}
        # A worker built with an engine of its own (tests, benchmarks) keeps it.
        self.engine = worker.faces or load_face_recognizer(settings.face_engine, **options)

    def analyze(self, pixels) -> list[FaceFound]:
        return self.engine.detect(pixels)

    def record(self, sha256: str, finding: list[FaceFound]) -> dict:
        if finding:
            self.worker.face_index.add_image_faces(sha256, finding)
        return {"faces": [{"box": face.box.to_dict()} for face in finding]}
