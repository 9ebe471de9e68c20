"""Fuzzing imagescan.imaging: whatever the bytes, a result or ImageRejected with a 4xx status.

Random bytes, and real images (made here) with bit flips, truncations, spliced garbage and
hostile EXIF segments. Any other exception would be a 5xx in the REST or a crashed analysis.
"""

from __future__ import annotations

import io
import struct

import piexif
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagescan import imaging
from tests.imagefactory import gps_exif, jpeg, png

PIXEL_LIMIT = 4_000_000
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True, database=None)


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (24, 16), 3).save(buffer, "GIF")
    return buffer.getvalue()


def _saved(fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 120, 200)).save(buffer, fmt, **options)
    return buffer.getvalue()


SEEDS = {
    "jpeg": jpeg(48, 32, seed=1),
    "jpeg-gps": jpeg(48, 32, seed=2, exif=gps_exif(48.1, 17.1)),
    "png": png(24, 24),
    "gif": _gif(),
    "webp": _saved("WEBP"),
    "bmp": _saved("BMP"),
    "tiff": _saved("TIFF"),
}


def check(data: bytes) -> None:
    """The property: every entry point either answers or refuses with a 4xx."""
    try:
        info = imaging.inspect(data, PIXEL_LIMIT)
        assert info.width > 0 and info.height > 0 and info.width * info.height <= PIXEL_LIMIT
    except imaging.ImageRejected as rejected:
        assert 400 <= rejected.status < 500 and rejected.reason
    try:
        decoded = imaging.decode(data, PIXEL_LIMIT)
    except imaging.ImageRejected as rejected:
        assert 400 <= rejected.status < 500 and rejected.reason
        return
    assert decoded.pixels.mode == "RGB"
    gps = imaging.read_gps(decoded.exif)
    if gps is not None:
        assert -90 <= gps["latitude"] <= 90 and -180 <= gps["longitude"] <= 180
    camera = imaging.read_camera(decoded.exif)
    assert set(camera) == {"make", "model", "taken_at"}
    for text in (camera["make"], camera["model"]):
        assert text is None or (isinstance(text, str) and len(text) <= 128)
    imaging.camera_label(camera)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    check(data)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.binary(min_size=0, max_size=8))
def test_random_bytes_after_a_real_signature(name, tail):
    """A real image's first bytes (its signature and part of its header), then garbage."""
    seed = SEEDS[name]
    check(seed[:16] + tail + seed[16 + len(tail):][:64])


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)),
                                                 min_size=1, max_size=12))
def test_bit_flips(name, flips):
    data = bytearray(SEEDS[name])
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    check(bytes(data))


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.integers(0, 10**6))
def test_truncations(name, cut):
    data = SEEDS[name]
    check(data[: cut % len(data)])


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.integers(0, 10**6), st.binary(max_size=256))
def test_spliced_garbage(name, position, garbage):
    data = SEEDS[name]
    position %= len(data)
    check(data[:position] + garbage + data[position:])


def _app1(payload: bytes) -> bytes:
    base = SEEDS["jpeg"]
    return base[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + base[2:]


@FUZZ
@given(st.binary(max_size=2048))
def test_spliced_exif_segment(payload):
    """An APP1 segment that claims to be EXIF, with a random TIFF body."""
    check(_app1(b"Exif\x00\x00" + payload))


@FUZZ
@given(st.sampled_from([b"II*\x00", b"MM\x00*"]), st.binary(max_size=512))
def test_spliced_exif_with_a_valid_tiff_header(order, body):
    check(_app1(b"Exif\x00\x00" + order + body))


rationals = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))


@FUZZ
@given(st.tuples(rationals, rationals, rationals), st.tuples(rationals, rationals, rationals),
       st.binary(max_size=4), st.binary(max_size=4), st.binary(max_size=300), st.binary(max_size=40))
def test_hostile_gps_and_camera_values(latitude, longitude, lat_ref, lon_ref, make, taken):
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Make: make, piexif.ImageIFD.Model: make[::-1]},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: taken},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: lat_ref, piexif.GPSIFD.GPSLatitude: latitude,
                piexif.GPSIFD.GPSLongitudeRef: lon_ref, piexif.GPSIFD.GPSLongitude: longitude},
    })
    check(_app1(exif))


@pytest.mark.parametrize("width, height", [(65535, 65535), (1, 65535 * 64), (2**31 - 1, 2)])
def test_huge_declared_dimensions_are_413(width, height):
    """Decompression bombs: refused from the header, before any pixel is decoded."""
    data = bytearray(SEEDS["png"])
    data[16:24] = struct.pack(">II", width, height)  # IHDR (its CRC is wrong too: refused either way)
    with pytest.raises(imaging.ImageRejected) as refused:
        imaging.inspect(bytes(data), PIXEL_LIMIT)
    assert 400 <= refused.value.status < 500


@pytest.mark.parametrize("entry", [imaging.inspect, imaging.decode])
def test_a_bug_of_ours_in_decoding_is_not_passed_off_as_a_corrupt_image(entry, monkeypatch):
    """What makes the property above able to fail: only what Pillow raises on unreadable bytes
    becomes a 4xx; an error of the code itself comes out as what it is."""
    def broken_load(self):
        raise AttributeError("a bug in the decoding code")

    monkeypatch.setattr(Image.Image, "load", broken_load)
    with pytest.raises(AttributeError):
        entry(SEEDS["png"], PIXEL_LIMIT)
