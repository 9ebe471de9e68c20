"""The REST's structural JPEG check: whole JPEGs of every common kind pass, broken ones do not."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, ImageDraw

from imagescan import imaging
from imagescan.jpegcheck import JpegStructureError, check_jpeg
from tests.imagefactory import gps_exif, jpeg, undecodable_but_whole_jpeg


def _photo(mode: str = "RGB", **options) -> bytes:
    """A 96x64 picture with detail in it (so the entropy-coded data holds stuffed 0xFF bytes)."""
    image = Image.new("RGB", (96, 64), (90, 140, 200))
    draw = ImageDraw.Draw(image)
    for step in range(0, 96, 6):
        draw.line((step, 0, 95 - step, 63), fill=(step * 2, 255 - step, step), width=2)
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, "JPEG", **options)
    return buffer.getvalue()


WHOLE = {
    "baseline": _photo(quality=95),
    "progressive": _photo(progressive=True),
    "optimized": _photo(optimize=True),
    "no-subsampling": _photo(subsampling=0),
    "grey": _photo("L"),
    "cmyk": _photo("CMYK"),
    "restart-markers": _photo(restart_marker_blocks=1),
    "exif-gps": jpeg(80, 60, exif=gps_exif(48.1, 17.1)),
}


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_whole_jpegs_pass(name):
    check_jpeg(WHOLE[name])
    assert imaging.inspect(WHOLE[name], 10**7).format == "JPEG"


def test_bytes_after_the_end_of_image_marker_are_allowed():
    """An MPO's further pictures, or what cameras and editors append, follow the first EOI."""
    check_jpeg(WHOLE["baseline"] + WHOLE["grey"])
    check_jpeg(WHOLE["baseline"] + b"trailing bytes")


def test_fill_bytes_before_a_marker_are_allowed():
    data = WHOLE["baseline"]
    check_jpeg(data[:-2] + b"\xff\xff\xff" + data[-1:])


@pytest.mark.parametrize("name", ["baseline", "progressive", "restart-markers", "exif-gps"])
def test_every_truncation_is_refused(name):
    """Whatever the cut, a JPEG without its end is refused (the scan ends at no marker)."""
    data = WHOLE[name]
    for cut in range(len(data)):
        with pytest.raises(JpegStructureError):
            check_jpeg(data[:cut])


def _patched(data: bytes, marker: bytes, offset: int, value: bytes) -> bytes:
    at = data.index(marker) + offset
    return data[:at] + value + data[at + len(value):]


BROKEN = {
    "no-signature": b"\x00" + WHOLE["baseline"][1:],
    "huffman-counts": _patched(WHOLE["baseline"], b"\xff\xc4", 5, b"\xff" * 16),
    "quantisation-table-id": _patched(WHOLE["baseline"], b"\xff\xdb", 4, b"\x27"),
    "segment-length": _patched(WHOLE["baseline"], b"\xff\xdb", 2, b"\xff\xf0"),
    "frame-components": _patched(WHOLE["baseline"], b"\xff\xc0", 9, b"\x09"),
    "scan-component": _patched(WHOLE["baseline"], b"\xff\xda", 5, b"\x07"),
    "restart-marker-between-segments": WHOLE["baseline"][:2] + b"\xff\xd0" + WHOLE["baseline"][2:],
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_structure_is_refused_with_a_reason(name):
    with pytest.raises(JpegStructureError):
        check_jpeg(BROKEN[name])
    # Through the REST's check: refused with a 4xx, by Pillow's header reader or by ours.
    with pytest.raises(imaging.ImageRejected) as refused:
        imaging.inspect(BROKEN[name], 10**7)
    assert refused.value.status in (400, 415)
    assert refused.value.reason


def test_a_scan_before_the_frame_is_refused():
    data = WHOLE["baseline"]
    frame_start = data.index(b"\xff\xc0")
    (frame_length,) = struct.unpack_from(">H", data, frame_start + 2)
    frame = data[frame_start:frame_start + 2 + frame_length]
    without_frame = data[:frame_start] + data[frame_start + 2 + frame_length:]
    scan = without_frame.index(b"\xff\xda")
    moved = without_frame[:scan] + without_frame[scan:-2] + frame + b"\xff\xd9"
    with pytest.raises(JpegStructureError, match="before the frame"):
        check_jpeg(moved)


def test_what_the_structure_check_lets_through_the_full_decode_refuses():
    data = undecodable_but_whole_jpeg()
    check_jpeg(data)
    with pytest.raises(imaging.ImageRejected) as refused:
        imaging.decode(data, 10**7)
    assert refused.value.status == 400


def test_a_file_of_endless_tiny_segments_is_refused_without_walking_it_all():
    data = WHOLE["baseline"]
    padding = b"\xff\xfe\x00\x02" * 2_000_000  # 8 MB of empty comment segments
    with pytest.raises(JpegStructureError, match="segments"):
        check_jpeg(data[:2] + padding + data[2:])
