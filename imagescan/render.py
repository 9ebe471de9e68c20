"""Draw an image's analysis on it: a box and the text for each plate, a box for each face.

Boxes in the analysis are in pixels of the upright image (EXIF orientation applied), which is
what the analyzers saw, so the drawing is made on the upright image too. The output is JPEG for
JPEG sources and PNG for everything else (see imagescan.transforms).
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from . import transforms

PLATE_COLOUR = (255, 32, 32)
FACE_COLOUR = (32, 255, 64)
TEXT_COLOUR = (255, 255, 255)


def _box(raw) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) from {x, y, w, h} or {left, top, right, bottom}; None if unusable."""
    if not isinstance(raw, dict):
        return None
    try:
        if "w" in raw:
            left, top = int(raw["x"]), int(raw["y"])
            return left, top, left + int(raw["w"]), top + int(raw["h"])
        return int(raw["left"]), int(raw["top"]), int(raw["right"]), int(raw["bottom"])
    except (KeyError, TypeError, ValueError):
        return None


def _plate_label(plate: dict) -> str:
    text = str(plate.get("plate", ""))
    confidence = plate.get("confidence")
    if isinstance(confidence, (int, float)):
        # Engines report either 0..1 or 0..100; show a percentage either way.
        percent = confidence * 100 if confidence <= 1 else confidence
        text = f"{text} {percent:.0f}%"
    return text


def _drawing_mode(image: Image.Image) -> Image.Image:
    return image.convert("RGBA" if transforms.has_transparency(image) else "RGB")


def draw_analysis(image: Image.Image, analysis: dict) -> Image.Image:
    """A copy of the (upright) image with the plates and faces of the analysis drawn on it."""
    canvas = _drawing_mode(image)
    draw = ImageDraw.Draw(canvas)
    # Lines and text scale with the picture so they stay visible on large photos.
    scale = max(canvas.size) / 1000
    width = max(2, round(3 * scale))
    font = ImageFont.load_default(size=max(12, round(24 * scale)))

    for face in analysis.get("faces") or ():
        box = _box(face.get("box")) if isinstance(face, dict) else None
        if box:
            draw.rectangle(box, outline=FACE_COLOUR, width=width)

    for plate in analysis.get("plates") or ():
        box = _box(plate.get("box")) if isinstance(plate, dict) else None
        if not box:
            continue
        draw.rectangle(box, outline=PLATE_COLOUR, width=width)
        label = _plate_label(plate)
        if label:
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            text_w, text_h = right - left, bottom - top
            # Above the box when there is room, else inside its top edge.
            y = box[1] - text_h - 2 * width if box[1] - text_h - 2 * width >= 0 else box[1]
            x = box[0]
            draw.rectangle((x, y, x + text_w + 2 * width, y + text_h + 2 * width), fill=PLATE_COLOUR)
            draw.text((x + width - left, y + width - top), label, fill=TEXT_COLOUR, font=font)
    return canvas


def render_analysis(image: Image.Image, analysis: dict) -> transforms.Rendered:
    """The encoded output of a job: the analysis drawn on the upright image."""
    fmt = "JPEG" if image.format in transforms.JPEG_SOURCES else "PNG"
    return transforms.encode(draw_analysis(transforms.upright(image), analysis), fmt)
