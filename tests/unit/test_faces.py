"""DlibFaceRecognizer on real photos from the shared test data (skipped when absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from imagescan.analyzers import EngineUnavailable, load_face_recognizer
from imagescan.faceindex import DEFAULT_TOLERANCE

REPO_ROOT = Path(__file__).resolve().parents[2]
FACES = REPO_ROOT.parent / "shared" / "data" / "faces"
TOLERANCE = DEFAULT_TOLERANCE

needs_photos = pytest.mark.skipif(
    not (FACES / "labels.csv").is_file(), reason="shared face photos are absent"
)


@pytest.fixture(scope="module")
def recognizer():
    try:
        return load_face_recognizer("dlib")
    except EngineUnavailable as exc:
        pytest.skip(f"dlib engine unavailable: {exc}")


def photo(name: str) -> Image.Image:
    with Image.open(FACES / name) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def single_encoding(recognizer, name: str) -> np.ndarray:
    faces = recognizer.detect(photo(name))
    assert len(faces) == 1, name
    return np.asarray(faces[0].encoding, dtype=np.float64)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


@needs_photos
@pytest.mark.parametrize(
    "first, second",
    [
        ("openface/clapton-1.jpg", "openface/clapton-2.jpg"),
        ("openface/lennon-1.jpg", "openface/lennon-2.jpg"),
        (
            "face_recognition/examples_knn_examples_train_obama_obama.jpg",
            "face_recognition/examples_obama-1080p.jpg",
        ),
    ],
)
def test_two_photos_of_one_person_are_within_tolerance(recognizer, first, second):
    assert distance(single_encoding(recognizer, first), single_encoding(recognizer, second)) <= TOLERANCE


@needs_photos
@pytest.mark.parametrize(
    "first, second",
    [
        ("openface/clapton-1.jpg", "openface/lennon-1.jpg"),
        ("openface/adams.jpg", "openface/carell.jpg"),
        (
            "face_recognition/examples_biden.jpg",
            "face_recognition/examples_knn_examples_train_obama_obama.jpg",
        ),
    ],
)
def test_different_people_are_beyond_tolerance(recognizer, first, second):
    assert distance(single_encoding(recognizer, first), single_encoding(recognizer, second)) > TOLERANCE


@needs_photos
def test_image_with_two_people_gives_two_encodings(recognizer):
    faces = recognizer.detect(photo("openface/longoria-cooper.jpg"))
    assert len(faces) == 2
    assert distance(np.asarray(faces[0].encoding), np.asarray(faces[1].encoding)) > TOLERANCE


@needs_photos
def test_encodings_are_128_float32_values(recognizer):
    [face] = recognizer.detect(photo("openface/carell.jpg"))
    values = np.asarray(face.encoding, dtype=np.float64)
    assert values.shape == (128,)
    np.testing.assert_array_equal(values, values.astype(np.float32).astype(np.float64))


def test_blank_image_has_no_faces(recognizer):
    assert recognizer.detect(Image.new("RGB", (640, 480), (128, 128, 128))) == []


@needs_photos
def test_boxes_are_inside_the_original_image(recognizer):
    for name in (
        "face_recognition/examples_knn_examples_test_obama_and_biden.jpg",
        "face_recognition/tests_test_images_obama_partial_face.jpg",
    ):
        image = photo(name)
        faces = recognizer.detect(image)
        assert faces, name
        for face in faces:
            box = face.box
            assert box.w > 0 and box.h > 0
            assert 0 <= box.x and box.x + box.w <= image.width
            assert 0 <= box.y and box.y + box.h <= image.height


@needs_photos
def test_downscaling_maps_boxes_back_to_original_pixels(recognizer):
    """A 1920x1080 photo is analysed at 1280 px; its box must match the full-size detection.

    Neither copy is upsampled, and the HOG detector's boxes step with its pyramid's
    scales: a tenth of the face's width apart is the same box; a box not mapped back
    would be a third of the image off.
    """
    image = photo("face_recognition/examples_obama-1080p.jpg")
    [small] = recognizer.detect(image)
    full_size = load_face_recognizer("dlib", max_side=4096)
    [large] = full_size.detect(image)
    assert abs(small.box.x - large.box.x) <= 0.1 * large.box.w
    assert abs(small.box.y - large.box.y) <= 0.1 * large.box.h
    assert abs(small.box.w - large.box.w) <= 0.1 * large.box.w
    assert distance(np.asarray(small.encoding), np.asarray(large.encoding)) < 0.2


@needs_photos
def test_non_rgb_input_is_accepted(recognizer):
    gray = photo("openface/carell.jpg").convert("L")
    assert len(recognizer.detect(gray)) == 1


@pytest.mark.parametrize("missing", ["pkg_resources", "face_recognition_models", "face_recognition"])
def test_missing_library_raises_engine_unavailable_instead_of_exiting(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes "import <missing>" raise ImportError
    with pytest.raises(EngineUnavailable):
        load_face_recognizer("dlib")


class _QuitOnImport:
    """A meta-path finder reproducing face_recognition's quit() when its models are missing."""

    def find_spec(self, name, path=None, target=None):
        if name == "face_recognition":
            raise SystemExit("Please install `face_recognition_models`")


def test_face_recognition_quitting_on_import_raises_engine_unavailable(monkeypatch):
    monkeypatch.delitem(sys.modules, "face_recognition", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_QuitOnImport(), *sys.meta_path])
    with pytest.raises(EngineUnavailable):
        load_face_recognizer("dlib")


@needs_photos
def test_a_face_cropped_to_the_frame_is_found_inside_it(recognizer):
    """Small images get a margin before detection; the box still lies inside the image."""
    image = photo("openface/carell.jpg")
    [face] = recognizer.detect(image)
    box = face.box
    tight = image.crop((box.x, box.y, box.x + box.w, box.y + box.h)).resize((150, 150))
    [found] = recognizer.detect(tight)
    assert 0 <= found.box.x and found.box.x + found.box.w <= 150
    assert 0 <= found.box.y and found.box.y + found.box.h <= 150
    assert found.box.w >= 75


def test_large_images_are_not_upsampled_for_detection(monkeypatch, recognizer):
    calls = []
    monkeypatch.setattr(
        recognizer._fr, "face_locations", lambda pixels, number_of_times_to_upsample, model: calls.append(
            (pixels.shape, number_of_times_to_upsample)) or []
    )
    recognizer.detect(Image.new("RGB", (1280, 720)))
    recognizer.detect(Image.new("RGB", (200, 100)))
    assert calls[0] == ((720, 1280), 0)
    # the small one: upsampled once, with a margin of a quarter of its long side
    assert calls[1] == ((200, 300), 1)


@needs_photos
def test_faces_are_found_on_the_grey_image_and_encoded_from_the_colour_one(monkeypatch, recognizer):
    scanned, encoded = [], []
    locate, encoder = recognizer._fr.face_locations, recognizer._encoder

    class RecordingEncoder:  # dlib's encoder is a C++ object: wrapped, not patched
        def compute_face_descriptor(self, chips):
            encoded.extend(chip.shape for chip in chips)
            return encoder.compute_face_descriptor(chips)

    monkeypatch.setattr(
        recognizer._fr, "face_locations", lambda pixels, **options: scanned.append(pixels.ndim) or locate(pixels, **options)
    )
    monkeypatch.setattr(recognizer, "_encoder", RecordingEncoder())
    faces = recognizer.detect(photo("face_recognition/examples_knn_examples_test_obama_and_biden.jpg"))
    assert len(faces) == 3
    assert scanned == [2]  # one grey scan
    assert encoded and set(encoded) == {(150, 150, 3)}  # colour chips


@needs_photos
@pytest.mark.parametrize(
    "name",
    [
        "face_recognition/examples_knn_examples_test_obama_and_biden.jpg",
        "face_recognition/examples_obama-1080p.jpg",
        "face_recognition/tests_test_images_obama_partial_face.jpg",
        "openface/lennon-1.jpg",
    ],
)
def test_grey_detection_finds_the_faces_colour_detection_finds(recognizer, name):
    """The same faces, in nearly the same boxes (the detector's steps are a few pixels)."""
    colour = load_face_recognizer("dlib", grey_detection=False)
    grey_faces, colour_faces = recognizer.detect(photo(name)), colour.detect(photo(name))
    assert len(grey_faces) == len(colour_faces) > 0
    for grey, seen in zip(grey_faces, colour_faces):
        assert abs(grey.box.x - seen.box.x) <= 0.25 * seen.box.w
        assert abs(grey.box.y - seen.box.y) <= 0.25 * seen.box.h
        assert 0.75 <= grey.box.w / seen.box.w <= 1.33


@needs_photos
def test_labelled_faces_are_matchable(recognizer):
    for name in ("openface/clapton-1.jpg", "lfw/Tony_Blair_0004.jpg", "azure/Family1-Son2.jpg"):
        faces = recognizer.detect(photo(name))
        assert faces and all(face.matchable for face in faces), name


@needs_photos
def test_a_face_too_small_to_encode_is_listed_but_not_matchable(recognizer):
    image = photo("openface/clapton-1.jpg")
    tiny = image.resize((round(image.width * 0.12), round(image.height * 0.12)), Image.Resampling.LANCZOS)
    [face] = recognizer.detect(tiny)
    assert face.box.w < recognizer.min_matchable_side
    assert not face.matchable
    assert len(face.encoding) == 128  # still encoded and listed: only matching skips it


@needs_photos
def test_a_blurred_face_is_listed_but_not_matchable(recognizer):
    sharp = photo("lfw/Tony_Blair_0004.jpg")
    [face] = recognizer.detect(sharp.filter(ImageFilter.GaussianBlur(3)))
    assert not face.matchable


@needs_photos
def test_mirror_views_bring_photos_of_one_person_closer(recognizer):
    """Averaging the mirrored views is what lets the tolerance be strict: on a pair of photos
    of one person taken apart, the averaged encodings are closer than single ones."""
    single = load_face_recognizer("dlib", mirror=False)
    pairs = [("openface/clapton-1.jpg", "openface/clapton-2.jpg"), ("openface/lennon-1.jpg", "openface/lennon-2.jpg"),
             ("face_recognition/examples_knn_examples_train_obama_obama.jpg", "face_recognition/examples_obama-1080p.jpg")]
    averaged = sum(distance(*(single_encoding(recognizer, name) for name in pair)) for pair in pairs)
    plain = sum(distance(*(single_encoding(single, name) for name in pair)) for pair in pairs)
    assert averaged < plain


def test_match_confidence_falls_with_distance():
    from imagescan.faceconfidence import match_confidence

    values = [match_confidence(d) for d in (0.0, 0.3, 0.45, TOLERANCE, 0.6, 0.9, 5.0)]
    assert values == sorted(values, reverse=True)
    assert values[0] > 0.99 and values[-1] < 0.01
    assert 0.5 < match_confidence(TOLERANCE) < 1.0  # a match at the tolerance is more likely right


@needs_photos
def test_encodings_are_repeatable(recognizer):
    """The chips are moved by a fixed set of shifts, not dlib's random jitter: the same pixels
    give the same encoding, in one recognizer and in another."""
    image = photo("lfw/Tony_Blair_0004.jpg")
    [first] = recognizer.detect(image)
    [again] = recognizer.detect(image)
    [other] = load_face_recognizer("dlib").detect(image)
    assert first.encoding == again.encoding == other.encoding


@needs_photos
def test_shifted_chips_are_the_aligned_chip_moved(recognizer):
    """Each chip is dlib's aligned 150-pixel chip (same scale and centre) moved `shift` pixels."""
    import dlib

    pixels = np.asarray(photo("openface/clapton-1.jpg"))
    [(top, right, bottom, left)] = recognizer._fr.face_locations(pixels)
    landmarks = recognizer._landmarks[1](pixels, dlib.rectangle(left, top, right, bottom))
    aligned = dlib.get_face_chip(pixels, landmarks, 150, 0.25).astype(np.float64)
    shift = recognizer.shift
    up, down, leftward, rightward = (chip.astype(np.float64) for chip in recognizer._shifted_chips(pixels, landmarks))
    assert up.shape == aligned.shape == (150, 150, 3)
    # moved up: the chip shows what lies `shift` pixels above the aligned one, and so on
    inner = slice(2 * shift, 150 - 2 * shift)
    pairs = [(up[shift:], aligned[:-shift]), (down[:-shift], aligned[shift:]),
             (leftward[:, shift:], aligned[:, :-shift]), (rightward[:, :-shift], aligned[:, shift:])]
    for moved, expected in pairs:
        assert np.abs(moved[inner, inner] - expected[inner, inner]).mean() < 2  # of 255: resampling only
    assert np.abs(up[inner, inner] - aligned[inner, inner]).mean() > 6  # and not the aligned chip itself


def test_shift_must_be_small():
    with pytest.raises(ValueError):
        load_face_recognizer("dlib", shift=40)
