import io
import threading

import pytest
from PIL import Image

from imagescan import imaging
from tests.imagefactory import gps_exif, jpeg, png, with_gps

LIMIT = 10_000_000


def test_inspect_reports_format_and_size():
    info = imaging.inspect(jpeg(80, 60), LIMIT)
    assert (info.format, info.width, info.height) == ("JPEG", 80, 60)


@pytest.mark.parametrize(
    "data, status",
    [
        (b"", 400),
        (b"hello, this is text and not an image", 415),
        (jpeg(400, 300)[:300], 400),  # truncated
    ],
)
def test_inspect_refuses_bad_bytes_with_a_status(data, status):
    with pytest.raises(imaging.ImageRejected) as refused:
        imaging.inspect(data, LIMIT)
    assert refused.value.status == status
    assert refused.value.reason


def test_decompression_bomb_is_refused_before_decoding():
    # 20000 x 20000 of one colour compresses to a few hundred kB of PNG.
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    with pytest.raises(imaging.ImageRejected) as refused:
        imaging.decode(buffer.getvalue(), LIMIT)
    assert refused.value.status == 413
    assert "400000000 pixels" in refused.value.reason


def test_decode_turns_the_image_upright_by_exif_orientation():
    import piexif

    exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6}})  # rotate 90° clockwise to view
    decoded = imaging.decode(jpeg(80, 40, exif=exif), LIMIT)
    assert (decoded.info.width, decoded.info.height) == (40, 80)
    assert decoded.pixels.mode == "RGB"


def test_gps_is_signed_decimal_degrees():
    decoded = imaging.decode(with_gps(jpeg(), -33.8568, 151.2153), LIMIT)
    gps = imaging.read_gps(decoded.exif)
    assert gps["latitude"] == pytest.approx(-33.8568, abs=1e-4)
    assert gps["longitude"] == pytest.approx(151.2153, abs=1e-4)


def test_west_longitude_is_negative():
    decoded = imaging.decode(with_gps(jpeg(), 40.7128, -74.006), LIMIT)
    assert imaging.read_gps(decoded.exif)["longitude"] == pytest.approx(-74.006, abs=1e-4)


def test_impossible_coordinates_are_dropped():
    decoded = imaging.decode(jpeg(exif=gps_exif(95.0, 10.0)), LIMIT)
    assert imaging.read_gps(decoded.exif) is None


def test_camera_facts_and_label():
    decoded = imaging.decode(jpeg(exif=gps_exif(1, 1, make="SONY", model="ILCE-7M2")), LIMIT)
    camera = imaging.read_camera(decoded.exif)
    assert camera == {"make": "SONY", "model": "ILCE-7M2", "taken_at": "2024-05-06T10:11:12"}
    assert imaging.camera_label(camera) == "SONY - ILCE-7M2"


def test_image_without_exif_has_no_facts():
    decoded = imaging.decode(png(), LIMIT)
    assert decoded.info.format == "PNG"
    assert imaging.read_gps(decoded.exif) is None
    assert imaging.read_camera(decoded.exif) == {"make": None, "model": None, "taken_at": None}


def test_a_large_png_is_checked_without_decoding_and_a_truncated_one_refused():
    buffer = io.BytesIO()
    Image.new("RGB", (2600, 1600), (9, 9, 9)).save(buffer, "PNG")
    data = buffer.getvalue()
    assert imaging.inspect(data, LIMIT).format == "PNG"
    with pytest.raises(imaging.ImageRejected) as refused:
        imaging.inspect(data[: len(data) // 2], LIMIT)
    assert refused.value.status == 400


def test_large_decodes_wait_for_a_slot_and_give_up_with_a_503(monkeypatch):
    buffer = io.BytesIO()
    Image.new("RGB", (2600, 1600)).save(buffer, "BMP")
    slots = threading.BoundedSemaphore(1)
    assert imaging.inspect(buffer.getvalue(), LIMIT, slots).format == "BMP"
    monkeypatch.setattr(imaging, "DECODE_SLOT_WAIT_SECONDS", 0.05)
    slots.acquire()  # another request holds the only slot
    with pytest.raises(imaging.ImageRejected) as refused:
        imaging.inspect(buffer.getvalue(), LIMIT, slots)
    assert refused.value.status == 503
    slots.release()
