"""Drawing an analysis on its image."""

from __future__ import annotations

import io

from PIL import Image

from imagescan import render


def _png(size=(300, 200), colour=(0, 0, 0)) -> Image.Image:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return Image.open(io.BytesIO(buffer.getvalue()))


def _jpeg(size=(300, 200)) -> Image.Image:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buffer, "JPEG")
    return Image.open(io.BytesIO(buffer.getvalue()))


PLATE = {"plate": "789SJL", "confidence": 0.93, "box": {"x": 100, "y": 120, "w": 80, "h": 30},
         "candidates": []}
FACE = {"box": {"x": 20, "y": 20, "w": 50, "h": 60}}


def _output(image: Image.Image, analysis: dict) -> Image.Image:
    rendered = render.render_analysis(image, analysis)
    decoded = Image.open(io.BytesIO(rendered.data))
    decoded.load()
    return decoded


def test_plate_box_and_face_box_are_drawn_in_their_colours():
    output = _output(_png(), {"plates": [PLATE], "faces": [FACE]})

    assert output.getpixel((100, 135)) == render.PLATE_COLOUR  # left edge of the plate box
    assert output.getpixel((179, 135)) == render.PLATE_COLOUR  # right edge
    assert output.getpixel((20, 50)) == render.FACE_COLOUR  # left edge of the face box
    assert output.getpixel((140, 135)) == (0, 0, 0)  # inside the plate box stays untouched
    assert output.getpixel((250, 20)) == (0, 0, 0)  # far from everything


def test_plate_text_is_written_above_the_box():
    output = _output(_png(), {"plates": [PLATE], "faces": []})

    label_band = output.crop((100, 80, 180, 118))
    colours = set(label_band.getdata())
    assert render.PLATE_COLOUR in colours  # the label's background
    assert render.TEXT_COLOUR in colours  # the letters


def test_label_goes_inside_a_box_at_the_top_edge():
    plate = {**PLATE, "box": {"x": 10, "y": 0, "w": 120, "h": 60}}

    output = _output(_png(), {"plates": [plate]})

    assert render.TEXT_COLOUR in set(output.crop((10, 0, 130, 60)).getdata())


def test_without_findings_the_output_is_the_image():
    source = _png(colour=(5, 6, 7))

    output = _output(source, {"plates": [], "faces": []})

    assert output.tobytes() == source.convert("RGB").tobytes()


def test_unusable_boxes_are_skipped():
    analysis = {"plates": [{"plate": "X", "box": None}, "junk"], "faces": [{"box": {"x": "?"}}, 3]}

    output = _output(_png(), analysis)

    assert set(output.getdata()) == {(0, 0, 0)}


def test_output_type_follows_the_source():
    assert render.render_analysis(_jpeg(), {}).content_type == "image/jpeg"
    assert render.render_analysis(_png(), {}).content_type == "image/png"
    assert Image.open(io.BytesIO(render.render_analysis(_jpeg(), {}).data)).format == "JPEG"


def test_confidence_label_as_percent():
    assert render._plate_label({"plate": "ABC123", "confidence": 0.5}) == "ABC123 50%"
    assert render._plate_label({"plate": "ABC123", "confidence": 87}) == "ABC123 87%"
    assert render._plate_label({"plate": "ABC123"}) == "ABC123"
