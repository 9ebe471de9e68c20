"""The prog-image transforms give exactly Pillow's pixels."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw, ImageOps

from imagescan import transforms
from imagescan.imaging import ImageRejected


def _patterned(mode: str, size=(40, 30)) -> Image.Image:
    """An image whose left and right halves differ, so a flip is visible in the pixels."""
    image = Image.new("RGBA", size, (20, 40, 200, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size[0] // 3, size[1]), fill=(250, 200, 10, 255))
    draw.rectangle((size[0] - 6, 0, size[0], 8), fill=(0, 0, 0, 0))  # transparent corner
    if mode == "P":
        return image.convert("RGB").quantize(8)
    return image.convert(mode)


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _opened(data: bytes) -> Image.Image:
    return transforms.open_image(data, max_pixels=10_000_000)


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _same_pixels(actual: Image.Image, expected: Image.Image) -> None:
    assert actual.size == expected.size
    assert actual.mode == expected.mode
    assert actual.tobytes() == expected.tobytes()


LOSSLESS_SOURCES = {
    "rgb-png": lambda: _encoded(_patterned("RGB"), "PNG"),
    "rgba-png": lambda: _encoded(_patterned("RGBA"), "PNG"),
    "gray-png": lambda: _encoded(_patterned("L"), "PNG"),
    "palette-gif": lambda: _encoded(_patterned("P"), "GIF"),
    "bmp": lambda: _encoded(_patterned("RGB"), "BMP"),
}


@pytest.mark.parametrize("source", sorted(LOSSLESS_SOURCES))
def test_grayscale_of_non_jpeg_is_pillow_convert_l_as_png(source):
    data = LOSSLESS_SOURCES[source]()

    output = transforms.transform(_opened(data), "grayscale")

    assert output.content_type == "image/png"
    _same_pixels(_decoded(output.data), Image.open(io.BytesIO(data)).convert("L"))


@pytest.mark.parametrize("source", sorted(LOSSLESS_SOURCES))
def test_mirror_of_non_jpeg_is_pillow_mirror_as_png(source):
    data = LOSSLESS_SOURCES[source]()

    output = transforms.transform(_opened(data), "mirror")

    assert output.content_type == "image/png"
    # Compared as RGBA (lossless from every source mode): the expectation is built by Pillow
    # alone, never by the code under test.
    expected = ImageOps.mirror(Image.open(io.BytesIO(data)).convert("RGBA"))
    _same_pixels(_decoded(output.data).convert("RGBA"), expected)


@pytest.mark.parametrize("source", sorted(LOSSLESS_SOURCES))
def test_png_keeps_every_pixel(source):
    data = LOSSLESS_SOURCES[source]()

    output = transforms.transform(_opened(data), "png")

    assert output.content_type == "image/png"
    original = Image.open(io.BytesIO(data)).convert("RGBA")
    _same_pixels(_decoded(output.data).convert("RGBA"), original)


def test_mirror_really_flips_left_right():
    data = _encoded(_patterned("RGB"), "PNG")

    mirrored = _decoded(transforms.transform(_opened(data), "mirror").data)

    assert mirrored.getpixel((0, 15)) == (20, 40, 200)  # was the right edge
    assert mirrored.getpixel((39, 15)) == (250, 200, 10)  # was the left edge


@pytest.mark.parametrize("operation", ["grayscale", "mirror", "jpeg"])
def test_jpeg_sources_give_pillows_own_jpeg_of_the_operation(operation):
    data = _encoded(_patterned("RGB", (64, 48)), "JPEG", quality=90)
    source = Image.open(io.BytesIO(data))
    pixels = {"grayscale": source.convert("L"), "mirror": ImageOps.mirror(source), "jpeg": source}[operation]
    expected = _decoded(_encoded(pixels, "JPEG", quality=transforms.JPEG_QUALITY))

    output = transforms.transform(_opened(data), operation)

    assert output.content_type == "image/jpeg"
    _same_pixels(_decoded(output.data), expected)


def test_jpeg_of_transparent_png_is_composited_over_white():
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((0, 0, 15, 31), fill=(200, 0, 0, 255))
    data = _encoded(image, "PNG")

    output = _decoded(transforms.transform(_opened(data), "jpeg").data)

    assert output.format == "JPEG" and output.mode == "RGB"
    red_r, red_g, _ = output.getpixel((4, 16))
    assert red_r > 180 and red_g < 40
    assert all(channel > 245 for channel in output.getpixel((28, 16)))  # transparent -> white


def test_jpeg_of_palette_with_transparency_is_rgb():
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    data = _encoded(image, "PNG", transparency=0)

    output = _decoded(transforms.transform(_opened(data), "jpeg").data)

    assert output.mode == "RGB"
    assert all(channel > 245 for channel in output.getpixel((8, 8)))


def test_exif_orientation_is_applied_before_the_operation():
    image = _patterned("RGB", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encoded(image, "JPEG", quality=95, exif=exif.tobytes())

    output = _decoded(transforms.transform(_opened(data), "png").data)

    assert output.size == (20, 40)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    _same_pixels(output, upright)


def test_output_format_rules():
    assert transforms.output_format("jpeg", "PNG") == "JPEG"
    assert transforms.output_format("png", "JPEG") == "PNG"
    assert transforms.output_format("grayscale", "MPO") == "JPEG"
    assert transforms.output_format("mirror", "GIF") == "PNG"
    with pytest.raises(ValueError):
        transforms.output_format("rotate", "PNG")


def test_open_image_refuses_too_many_pixels_before_decoding():
    data = _encoded(Image.new("L", (100, 100)), "PNG")

    with pytest.raises(ImageRejected) as refused:
        transforms.open_image(data, max_pixels=9_999)

    assert refused.value.status == 413


def test_open_image_refuses_non_images():
    with pytest.raises(ImageRejected) as refused:
        transforms.open_image(b"plain text, not pixels", max_pixels=10_000)

    assert refused.value.status == 415
