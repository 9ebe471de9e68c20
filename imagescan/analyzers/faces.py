"""Face detection and 128-d encodings with dlib through the face_recognition package.

The HOG detector runs on a copy of the image whose long side is at most ``max_side``
pixels: detection cost grows with the pixel count while the encodings barely change
past about a thousand pixels. Boxes are mapped back to the original image's pixels.

The detector finds faces of about 80 pixels and more in the image it scans. Small
images (long side at most ``upsample_max_side``) are scanned at twice their size, so
that their faces of 40 pixels are found too; larger ones are not: doubling a
1280x720 photo made face detection about four times slower (most of a photo's
analysis) and its faces under 80 pixels are too small to match reliably anyway.
Small images are also given a margin (their border repeated, ``margin`` times their
long side) before detection: a face cropped tightly to the frame is often missed
or, worse, encoded from a chip that reaches past the image's edge.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from imagescan.analyzers import Box, EngineUnavailable, FaceFound

_DLIB_LOCK = threading.Lock()


def _import_face_recognition():
    """Import face_recognition, turning its failure modes into EngineUnavailable.

    face_recognition calls ``quit()`` (SystemExit) when face_recognition_models cannot
    be imported, which happens when setuptools >= 81 removed ``pkg_resources``. Importing
    the models package first turns that into an ordinary, reportable error.
    """
    try:
        import pkg_resources  # noqa: F401  (face_recognition_models needs it)
    except ImportError as exc:
        raise EngineUnavailable("face_recognition_models needs pkg_resources: pin setuptools<81") from exc
    try:  # first on its own: face_recognition would quit() on this failure
        import face_recognition_models  # noqa: F401
    except (ImportError, OSError) as exc:
        raise EngineUnavailable(f"face_recognition_models cannot be loaded: {exc!r}") from exc
    try:
        import face_recognition
    except (ImportError, OSError, RuntimeError, SystemExit) as exc:
        raise EngineUnavailable(f"face_recognition cannot be loaded: {exc!r}") from exc
    return face_recognition


class DlibFaceRecognizer:
    name = "dlib"

    def __init__(
        self,
        max_side: int = 1280,
        model: str = "hog",
        upsample: int = 1,
        jitters: int = 1,
        upsample_max_side: int = 800,
        margin: float = 0.25,
    ):
        if max_side < 64:
            raise ValueError("max_side must be at least 64 pixels")
        if model not in ("hog", "cnn"):
            raise ValueError("model must be 'hog' or 'cnn'")
        self.max_side = max_side
        self.model = model
        self.upsample = upsample
        self.jitters = jitters
        self.upsample_max_side = upsample_max_side
        self.margin = margin
        self._fr = _import_face_recognition()

    def detect(self, image: Image.Image) -> list[FaceFound]:
        """Faces in reading order (left to right, then top to bottom), encodings as float32."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        working, scale = self._downscaled(image)
        pixels = np.asarray(working, dtype=np.uint8)
        small = max(working.size) <= self.upsample_max_side
        pad = round(self.margin * max(working.size)) if small else 0
        if pad:
            pixels = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        # face_recognition keeps one dlib detector and model per process, and dlib's are not
        # thread-safe (two threads in them at once crash the process): one call at a time.
        with _DLIB_LOCK:
            upsample = self.upsample if small else 0
            locations = self._fr.face_locations(pixels, number_of_times_to_upsample=upsample, model=self.model)
            if not locations:
                return []
            encodings = self._fr.face_encodings(
                pixels, known_face_locations=locations, num_jitters=self.jitters
            )
        faces = [
            FaceFound(
                box=_box_in_original(_unpadded(location, pad), scale, image.size),
                encoding=tuple(np.asarray(encoding, dtype=np.float32).tolist()),
            )
            for location, encoding in zip(locations, encodings)
        ]
        faces.sort(key=lambda face: (face.box.x, face.box.y))
        return faces

    def _downscaled(self, image: Image.Image) -> tuple[Image.Image, float]:
        """A copy whose long side is at most max_side, and the factor original -> copy."""
        long_side = max(image.size)
        if long_side <= self.max_side:
            return image, 1.0
        scale = self.max_side / long_side
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        # reducing_gap makes large reductions fast with no visible loss for detection
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), scale


def _unpadded(location: tuple[int, int, int, int], pad: int) -> tuple[int, int, int, int]:
    top, right, bottom, left = location
    return top - pad, right - pad, bottom - pad, left - pad


def _box_in_original(location: tuple[int, int, int, int], scale: float, size: tuple[int, int]) -> Box:
    """face_recognition's (top, right, bottom, left) in the copy -> Box in the original, clamped."""
    top, right, bottom, left = (value / scale for value in location)
    width, height = size
    x0 = min(max(0, round(left)), width - 1)
    y0 = min(max(0, round(top)), height - 1)
    x1 = min(max(x0 + 1, round(right)), width)
    y1 = min(max(y0 + 1, round(bottom)), height)
    return Box(x=x0, y=y0, w=x1 - x0, h=y1 - y0)
