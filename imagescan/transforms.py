"""Image transforms of the prog-image API: pure Pillow operations, no I/O besides bytes.

Every operation works on the upright image (EXIF orientation applied, as a viewer shows it),
because the output carries no EXIF and would otherwise come out rotated. Animated images
use their first frame.

Output formats, chosen so that the pixels are exactly what Pillow gives:
- ``jpeg``: JPEG (quality 95). JPEG has no alpha: an image with transparency (RGBA, LA, a
  palette or RGB with a transparent colour) is composited over white first; other modes than
  L and RGB are converted to RGB.
- ``png``: PNG, lossless; CMYK and YCbCr (which PNG cannot hold) become RGB.
- ``grayscale``: Pillow ``convert("L")``. ``mirror``: ``ImageOps.mirror`` (left-right flip).
  Both keep the source's family: JPEG sources (JPEG, MPO) give JPEG (quality 95, the only
  loss being that encoding), every other source gives PNG, whose pixels equal Pillow's exactly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from .imaging import open_checked

JPEG_QUALITY = 95
JPEG_SOURCES = frozenset({"JPEG", "MPO"})
OPERATIONS = ("jpeg", "png", "grayscale", "mirror")
THUMBNAIL_SIZES = (128, 256, 512)  # the thumbnail sizes served (and erased with the image)
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
# Modes PNG can store as they are; anything else is converted to RGB(A) first.
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open stored image bytes lazily, refusing more than max_pixels before any pixel is decoded."""
    return open_checked(data, max_pixels)[0]


def upright(image: Image.Image) -> Image.Image:
    """The first frame with its EXIF orientation applied (a no-op for images without one)."""
    image.seek(0)
    return ImageOps.exif_transpose(image)


def has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def flatten_for_jpeg(image: Image.Image) -> Image.Image:
    """The image in a mode JPEG can store: transparency over white, then L or RGB."""
    if has_transparency(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("L", "RGB"):
        return image
    return image.convert("RGB")


def for_png(image: Image.Image) -> Image.Image:
    if image.mode in _PNG_MODES:
        return image
    return image.convert("RGBA" if has_transparency(image) else "RGB")


def encode(image: Image.Image, fmt: str) -> Rendered:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        flatten_for_jpeg(image).save(buffer, "JPEG", quality=JPEG_QUALITY)
    else:
        for_png(image).save(buffer, "PNG")
    return Rendered(buffer.getvalue(), CONTENT_TYPES[fmt])


def output_format(operation: str, source_format: str | None) -> str:
    """Pillow format name of an operation's output for a source of this format."""
    if operation == "jpeg":
        return "JPEG"
    if operation == "png":
        return "PNG"
    if operation in ("grayscale", "mirror"):
        return "JPEG" if source_format in JPEG_SOURCES else "PNG"
    raise ValueError(f"unknown operation {operation!r}")


def operate(image: Image.Image, operation: str) -> Image.Image:
    """The pixels of an operation, before encoding."""
    if operation in ("jpeg", "png"):
        return image
    if operation == "grayscale":
        return image.convert("L")
    if operation == "mirror":
        return ImageOps.mirror(image)
    raise ValueError(f"unknown operation {operation!r}")


def transform(image: Image.Image, operation: str) -> Rendered:
    """Apply one of OPERATIONS to an opened image and encode the result."""
    fmt = output_format(operation, image.format)
    return encode(operate(upright(image), operation), fmt)


def thumbnail(image: Image.Image, max_side: int) -> Rendered:
    """A JPEG of the upright image, at most max_side pixels on either side (never enlarged)."""
    image.draft(image.mode, (max_side, max_side))  # JPEG decodes at 1/2, 1/4 or 1/8 scale: much faster
    small = upright(image)
    small.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    flatten_for_jpeg(small).save(buffer, "JPEG", quality=82)
    return Rendered(buffer.getvalue(), CONTENT_TYPES["JPEG"])
