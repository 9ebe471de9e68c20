"""Safe image decoding and EXIF facts, shared by the REST (validation) and the worker (analysis).

Decoding is bounded: the pixel count is checked from the header before any pixel is decoded,
so a decompression bomb (huge dimensions in a tiny file) is refused, never inflated.
"""

from __future__ import annotations

import io
import math
import struct
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from imagescan import jpegcheck

# We check the pixel count ourselves (with the configured cap) before decoding; Pillow's
# own global guard is lifted so that the two limits cannot disagree.
Image.MAX_IMAGE_PIXELS = None

# Formats Pillow reads that we accept as photos; everything else is refused up front.
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF"}
MIME_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
_TEXT_LIMIT = 128  # longest EXIF text we keep (make, model)


def format_name(pillow_format: str | None) -> str | None:
    """The format we report: Pillow's name, with MPO (a multi-picture JPEG) as JPEG."""
    return "JPEG" if pillow_format == "MPO" else pillow_format


def mime_type_of(data: bytes) -> str:
    """Content type of image bytes we already accepted, from their header alone."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pillow_format = Image.open(io.BytesIO(data)).format
    except Exception:  # noqa: BLE001  (not an image after all: serve it as opaque bytes)
        return "application/octet-stream"
    return MIME_TYPES.get(format_name(pillow_format), "application/octet-stream")


# What Pillow raises on bytes it cannot read. Anything else (AttributeError, NameError,
# AssertionError, RecursionError, MemoryError...) is a bug of ours or a machine in trouble:
# it must not pass for "your image is corrupt" (a 400 that hides it), but fail loudly.
CORRUPT_DATA_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError,
                       TypeError, ZeroDivisionError, NotImplementedError, Image.DecompressionBombError)


class ImageRejected(ValueError):
    """The bytes are not an image we can analyse; `status` is the HTTP status that says so."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name, with MPO (multi-picture JPEG) reported as JPEG
    width: int
    height: int


def open_checked(data: bytes, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    """The image opened lazily (header only) once its format and pixel count are acceptable."""
    # face_recognition sets this process-wide flag on import, which would make truncated
    # files decode "successfully" with grey pixels; a truncated upload must be refused.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if not data:
        raise ImageRejected(400, "the request body is empty; send the image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected(415, "not an image: the bytes are not in a format we read "
                                 f"({', '.join(sorted(MIME_TYPES))})") from None
    except CORRUPT_DATA_ERRORS as exc:  # Pillow raises many types on hostile headers
        raise ImageRejected(400, f"corrupt image header: {exc}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(415, f"unsupported image format {image.format}")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(400, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageRejected(
            413, f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )
    return image, ImageInfo(format_name(image.format), width, height)


# Above this many pixels a full decode is costly (memory of ~3 bytes a pixel): such PNGs are
# checked chunk by chunk instead, and other formats wait for one of a few decode slots.
SMALL_DECODE_PIXELS = 4_000_000
DECODE_SLOT_WAIT_SECONDS = 30


def inspect(data: bytes, max_pixels: int, decode_slots: threading.Semaphore | None = None) -> ImageInfo:
    """Check that the bytes are a whole, decodable image without paying for a full decode.

    A JPEG's structure is checked without decoding it (`imagescan.jpegcheck`: segments,
    tables, scans, end-of-image marker), which finds truncated and non-JPEG bytes for a few
    microseconds; the worker decodes it in full and marks it failed if its compressed
    pixels are corrupt inside. A large PNG is checked from its chunks (every CRC, up to
    the end chunk) without inflating its pixels. Other large images are decoded in full,
    at most `decode_slots` at a time, so that a burst of them cannot take all of the
    process's memory at once.
    """
    image, info = open_checked(data, max_pixels)
    if info.format == "JPEG":
        try:
            jpegcheck.check_jpeg(data)
        except jpegcheck.JpegStructureError as broken:
            raise ImageRejected(400, f"corrupt or truncated JPEG image: {broken}") from None
        return info
    small = info.width * info.height <= SMALL_DECODE_PIXELS
    if info.format == "PNG" or small or decode_slots is None:
        _check_decodes(image, info)
        return info
    if not decode_slots.acquire(timeout=DECODE_SLOT_WAIT_SECONDS):
        raise ImageRejected(503, "too many large images are being checked right now")
    try:
        _check_decodes(image, info)
    finally:
        decode_slots.release()
    return info


def _check_decodes(image: Image.Image, info: ImageInfo) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if info.format == "PNG" and info.width * info.height > SMALL_DECODE_PIXELS:
                image.verify()
                return
            image.load()
    except CORRUPT_DATA_ERRORS as exc:
        raise ImageRejected(400, f"corrupt or truncated {info.format} image: {exc}") from None


@dataclass(frozen=True)
class DecodedImage:
    pixels: Image.Image  # RGB, upright
    info: ImageInfo  # width and height of the upright image
    exif: Image.Exif | None


def decode(data: bytes, max_pixels: int) -> DecodedImage:
    """The image as RGB pixels, turned upright by its EXIF orientation, with its info and EXIF."""
    image, info = open_checked(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            exif = _safe_exif(image)
            upright = ImageOps.exif_transpose(image) if exif else image
            rgb = upright.convert("RGB")
    except CORRUPT_DATA_ERRORS as exc:
        raise ImageRejected(400, f"corrupt or truncated {info.format} image: {exc}") from None
    return DecodedImage(rgb, ImageInfo(info.format, rgb.width, rgb.height), exif)


def _safe_exif(image: Image.Image) -> Image.Exif | None:
    try:
        exif = image.getexif()
        return exif if len(exif) else None
    except Exception:  # garbage EXIF must not stop the analysis of the pixels  # noqa: BLE001
        return None


# -- EXIF facts ----------------------------------------------------------------


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:_TEXT_LIMIT] or None


def _taken_at(exif: Image.Exif) -> str | None:
    try:
        raw = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal)
    except Exception:  # noqa: BLE001
        raw = None
    raw = _text(raw) or _text(exif.get(ExifTags.Base.DateTime))
    if not raw:
        return None
    try:
        return datetime.strptime(raw, "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _degrees(dms, ref) -> float | None:
    """Degrees/minutes/seconds plus an N/S/E/W reference as signed decimal degrees."""
    try:
        parts = [float(part) for part in dms]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if len(parts) != 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
        return None
    degrees, minutes, seconds = parts
    if minutes >= 60 or seconds >= 60:
        return None
    value = degrees + minutes / 60 + seconds / 3600
    ref = _text(ref)
    if ref is None or ref.upper() not in ("N", "S", "E", "W"):
        return None
    return -value if ref.upper() in ("S", "W") else value


def read_gps(exif: Image.Exif | None) -> dict | None:
    """{"latitude", "longitude"} in signed decimal degrees, or None when absent or impossible."""
    if exif is None:
        return None
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001
        return None
    if not gps:
        return None
    latitude = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef))
    longitude = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef))
    if latitude is None or longitude is None:
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    return {"latitude": round(latitude, 7), "longitude": round(longitude, 7)}


def read_camera(exif: Image.Exif | None) -> dict:
    if exif is None:
        return {"make": None, "model": None, "taken_at": None}
    return {
        "make": _text(exif.get(ExifTags.Base.Make)),
        "model": _text(exif.get(ExifTags.Base.Model)),
        "taken_at": _taken_at(exif),
    }


def camera_label(camera: dict) -> str | None:
    """`Make - Model` as the image-service stats show it, or None without both."""
    if camera.get("make") and camera.get("model"):
        return f"{camera['make']} - {camera['model']}"
    return None
