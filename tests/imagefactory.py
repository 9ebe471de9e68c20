"""Images made by the tests themselves (Pillow, piexif)."""

from __future__ import annotations

import io
from fractions import Fraction

import piexif
from PIL import Image, ImageDraw


def jpeg(width: int = 64, height: int = 48, color=(200, 30, 30), *, exif: bytes | None = None, seed: int = 0) -> bytes:
    """A small JPEG; different seeds give different bytes (and so different digests)."""
    image = Image.new("RGB", (width, height), color)
    ImageDraw.Draw(image).rectangle((seed % width, 0, seed % width + 3, 3), fill=(seed % 256, 0, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def undecodable_but_whole_jpeg() -> bytes:
    """Whole in structure, but a scan uses a Huffman table no segment defines: only a
    decoder finds that (the worker does, and marks the image failed)."""
    data = bytearray(jpeg(64, 48, seed=5))
    scan = data.index(b"\xff\xda")
    data[scan + 6] = 0x33  # the first component's DC/AC tables: 3 and 3, never defined
    return bytes(data)


def png(width: int = 32, height: int = 32, color=(10, 200, 10, 255), mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def _dms(value: float) -> tuple:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = Fraction((value - degrees - minutes / 60) * 3600).limit_denominator(10000)
    return ((degrees, 1), (minutes, 1), (seconds.numerator, seconds.denominator))


def gps_exif(latitude: float, longitude: float, *, make: str = "Canon", model: str = "EOS 5D") -> bytes:
    return piexif.dump({
        "0th": {piexif.ImageIFD.Make: make.encode(), piexif.ImageIFD.Model: model.encode()},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:05:06 10:11:12"},
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"N" if latitude >= 0 else b"S",
            piexif.GPSIFD.GPSLatitude: _dms(latitude),
            piexif.GPSIFD.GPSLongitudeRef: b"E" if longitude >= 0 else b"W",
            piexif.GPSIFD.GPSLongitude: _dms(longitude),
        },
    })


def with_gps(data: bytes, latitude: float, longitude: float, **camera) -> bytes:
    """A copy of a JPEG with GPS (and camera) EXIF written into it."""
    out = io.BytesIO()
    piexif.insert(gps_exif(latitude, longitude, **camera), data, out)
    return out.getvalue()


def noisy_jpeg(width: int = 1400, height: int = 1050, *, seed: int = 0) -> bytes:
    """A photo-sized JPEG (about 1.4 MB at the default size): noise barely compresses."""
    import numpy

    pixels = numpy.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=numpy.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def answer_with_jpeg(handler, body: bytes) -> None:
    """Send `body` as a 200 image/jpeg from an http.server request handler (test image servers)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
