"""Face detection and 128-d encodings with dlib through the face_recognition package.

The HOG detector runs on a copy of the image whose long side is at most ``max_side``
pixels: detection cost grows with the pixel count while the encodings barely change
past about a thousand pixels. Boxes are mapped back to the original image's pixels.
The HOG detector scans the grey image (``grey_detection``): on colour it takes each
pixel's strongest gradient over three channels, a quarter of its cost on a 1280x720
photo, for the same faces on the shared sets (README, face benchmark).

The detector finds faces of about 80 pixels and more in the image it scans. Small
images (long side at most ``upsample_max_side``) are scanned at twice their size, so
that their faces of 40 pixels are found too; larger ones are not: doubling a
1280x720 photo made face detection about four times slower (most of a photo's
analysis) and its faces under 80 pixels are too small to match reliably anyway.
Small images are also given a margin (their border repeated, ``margin`` times their
long side) before detection: a face cropped tightly to the frame is often missed
or, worse, encoded from a chip that reaches past the image's edge.

A face's single encoding moves with small alignment errors; an average over views of
the face moves less, which pulls photos of one person together more than it pulls
different people together (see the README's face benchmark). Each face is aligned four
ways: as seen and mirrored, each by the 5-point and by the 68-point landmark model. From
each aligned face, four chips are cut, moved ``shift`` pixels (2% of dlib's 150-pixel
chip, the translation of dlib's own random jitter) up, down, left and right: a fixed
jitter, so the same pixels always give the same encoding. The 16 chips go through
dlib's network in one batch and their encodings are averaged. Faces smaller than
``encode_side`` pixels are encoded from a copy of their surroundings enlarged to that
size, where the landmarks land more precisely.

A face smaller than ``min_matchable_side`` pixels or blurred (``sharpness`` below
``min_sharpness``) is listed but marked ``matchable=False``: its encoding says too
little about who it is, and the index never matches it. How sure a match is:
``imagescan.faceconfidence``.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
from PIL import Image

from imagescan.analyzers import Box, EngineUnavailable, FaceFound

_DLIB_LOCK = threading.Lock()

CHIP_SIDE, CHIP_PADDING = 150, 0.25  # the aligned chip dlib's network expects (dlib.get_face_chip)
SHARPNESS_SIDE = 150  # sharpness is measured on the face scaled to this size


def sharpness(pixels: np.ndarray, location: tuple[int, int, int, int]) -> float:
    """Variance of the Laplacian of the face, scaled to SHARPNESS_SIDE pixels (blur lowers it)."""
    top, right, bottom, left = location
    face = pixels[max(0, top) : max(0, bottom), max(0, left) : max(0, right)]
    if face.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


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
        shift: int = 3,
        upsample_max_side: int = 800,
        margin: float = 0.25,
        encode_side: int = 150,
        mirror: bool = True,
        min_matchable_side: int = 48,
        min_sharpness: float = 8.0,
        grey_detection: bool = True,
    ):
        if max_side < 64:
            raise ValueError("max_side must be at least 64 pixels")
        if model not in ("hog", "cnn"):
            raise ValueError("model must be 'hog' or 'cnn'")
        self.max_side = max_side
        self.model = model
        self.upsample = upsample
        if not 0 <= shift <= CHIP_SIDE // 10:
            raise ValueError(f"shift must be between 0 and {CHIP_SIDE // 10} pixels")
        self.shift = int(shift)
        self.upsample_max_side = upsample_max_side
        self.margin = margin
        self.encode_side = int(encode_side)
        self.mirror = bool(mirror)
        self.min_matchable_side = int(min_matchable_side)
        self.min_sharpness = float(min_sharpness)
        self.grey_detection = bool(grey_detection) and model == "hog"
        self._fr = _import_face_recognition()
        import dlib  # face_recognition imported it

        self._dlib = dlib
        api = self._fr.api  # the models face_recognition loaded: landmarks and the encoder
        self._landmarks = (api.pose_predictor_5_point, api.pose_predictor_68_point)
        self._encoder = api.face_encoder

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
            scanned = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if self.grey_detection else pixels
            locations = self._fr.face_locations(scanned, number_of_times_to_upsample=upsample, model=self.model)
            if not locations:
                return []
            encodings = [self._encode(pixels, location) for location in locations]
        faces = []
        for location, encoding in zip(locations, encodings):
            box = _box_in_original(_unpadded(location, pad), scale, image.size)
            faces.append(
                FaceFound(
                    box=box,
                    encoding=tuple(np.asarray(encoding, dtype=np.float32).tolist()),
                    matchable=self._matchable(pixels, location),
                )
            )
        faces.sort(key=lambda face: (face.box.x, face.box.y))
        return faces

    def _matchable(self, pixels: np.ndarray, location: tuple[int, int, int, int]) -> bool:
        """Large and sharp enough, in the pixels it was encoded from, to say who it is."""
        top, right, bottom, left = location
        if min(bottom - top, right - left) < self.min_matchable_side:
            return False
        return sharpness(pixels, location) >= self.min_sharpness

    def _encode(self, pixels: np.ndarray, location: tuple[int, int, int, int]) -> np.ndarray:
        """The face's encoding: averaged over mirror views, landmark models and shifts (module doc)."""
        if not self.mirror:
            return np.asarray(self._fr.face_encodings(pixels, [location])[0])
        view, location = _enlarged_surroundings(pixels, location, self.encode_side)
        width = view.shape[1]
        mirrored = np.ascontiguousarray(view[:, ::-1])
        top, right, bottom, left = location
        views = ((view, location), (mirrored, (top, width - left, bottom, width - right)))
        chips = [
            chip
            for image, (top, right, bottom, left) in views
            for predictor in self._landmarks
            for chip in self._shifted_chips(image, predictor(image, self._dlib.rectangle(left, top, right, bottom)))
        ]
        return np.mean(self._encoder.compute_face_descriptor(chips), axis=0)

    def _shifted_chips(self, image: np.ndarray, landmarks) -> list[np.ndarray]:
        """The aligned chip moved `shift` pixels each way (or as aligned, if shift is 0)."""
        if not self.shift:
            return [self._dlib.get_face_chip(image, landmarks, CHIP_SIDE, CHIP_PADDING)]
        # a chip with twice dlib's padding: the same face scale and centre, with a border of
        # one more padding's worth of face (25 px) to cut the shifted chips from
        border = round(CHIP_SIDE * CHIP_PADDING / (1 + 2 * CHIP_PADDING))
        wide = self._dlib.get_face_chip(image, landmarks, CHIP_SIDE + 2 * border, 2 * CHIP_PADDING)
        moves = ((0, -self.shift), (0, self.shift), (-self.shift, 0), (self.shift, 0))
        return [
            np.ascontiguousarray(wide[border + dy : border + dy + CHIP_SIDE, border + dx : border + dx + CHIP_SIDE])
            for dx, dy in moves
        ]

    def _downscaled(self, image: Image.Image) -> tuple[Image.Image, float]:
        """A copy whose long side is at most max_side, and the factor original -> copy."""
        long_side = max(image.size)
        if long_side <= self.max_side:
            return image, 1.0
        scale = self.max_side / long_side
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        # reducing_gap makes large reductions fast with no visible loss for detection
        return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), scale


def _enlarged_surroundings(
    pixels: np.ndarray, location: tuple[int, int, int, int], side: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The face with one face-height of surroundings (landmarks need them), enlarged so
    the face is at least `side` pixels, and the face's location in that copy."""
    top, right, bottom, left = location
    size = max(1, bottom - top)
    y0, x0 = max(0, top - size), max(0, left - size)
    y1, x1 = min(pixels.shape[0], bottom + size), min(pixels.shape[1], right + size)
    view = pixels[y0:y1, x0:x1]
    factor = max(1.0, side / size)
    if factor > 1.0:
        view = cv2.resize(view, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    moved = (top - y0, right - x0, bottom - y0, left - x0)
    return np.ascontiguousarray(view), tuple(round(value * factor) for value in moved)


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
