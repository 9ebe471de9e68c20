"""What the plate engine takes from rapidocr: loaded through its public call only, and the
parts it drives itself present in the pinned version."""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib.metadata import version

import numpy as np
import pytest

from imagescan.analyzers.plates import models
from tests.conftest import REPO_ROOT


def pinned(name: str) -> str:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = [spec for spec in project["optional-dependencies"]["engines"] if re.match(rf"{name}==", spec)]
    return specs[0].split("==")[1]


def test_the_installed_rapidocr_is_the_pinned_one():
    """The engine relies on the pinned version's stage objects (models.loaded_stages): an
    upgrade must come with a look at them, and this test."""
    assert version("rapidocr") == pinned("rapidocr")


def test_no_private_rapidocr_loader_is_called():
    assert not re.search(r"\._load_\w+\(", inspect.getsource(models))


@pytest.fixture(scope="module")
def stages():
    try:
        return models.load_models(threads=1)
    except models.EngineUnavailable as error:  # pragma: no cover - engines are installed by make venv
        pytest.skip(str(error))


def test_the_public_call_loads_both_stages(stages):
    detector, recognizer = stages
    assert type(detector).__name__ == "TextDetector" and type(recognizer).__name__ == "TextRecognizer"


def test_the_stage_parts_the_plate_engine_drives_are_there(stages):
    detector, recognizer = stages
    image = np.full((96, 320, 3), 255, dtype=np.uint8)
    batch = detector.get_preprocess()(image)
    prediction = detector.session(batch)
    boxes, _ = detector.postprocess_op(prediction, image.shape[:2])
    assert len(boxes) == 0, "a blank image has no text"
    assert len(recognizer.postprocess_op.character) > 36, "digits, letters and more"
    probs = recognizer.session(np.zeros((1, 3, 48, 160), dtype=np.float32))
    assert probs.shape[0] == 1 and probs.shape[2] == len(recognizer.postprocess_op.character)


def test_detector_input_is_rapidocrs_preprocessing_to_the_bit(stages):
    """DetectorInput's lookup tables give exactly the batch rapidocr's preprocessing makes,
    on images it rescales to multiples of 32 first."""
    detector, _ = stages
    rng = np.random.default_rng(7)
    fast = models.DetectorInput(detector.get_preprocess())
    for image in (
        rng.integers(0, 256, (90, 203, 3), dtype=np.uint8),
        np.arange(256 * 3, dtype=np.uint16).reshape(32, 24, 1).repeat(3, axis=2).astype(np.uint8)[:, :, ::-1],
    ):
        expected = detector.get_preprocess()(image)
        got = fast(image)
        assert got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
        assert got.shape == expected.shape
        assert np.array_equal(got, expected)


def test_detector_input_keeps_per_channel_normalisation():
    """A preprocessing with a different mean per channel gets one table per channel."""

    class Preprocess:
        def resize(self, image):
            return image

        def normalize(self, image):
            return (image.astype("float32") / 255.0 - np.array([0.1, 0.5, 0.9])) / np.array([0.2, 0.5, 0.3])

    image = np.random.default_rng(3).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    expected = Preprocess().normalize(image).transpose(2, 0, 1)[None].astype(np.float32)
    assert np.array_equal(models.DetectorInput(Preprocess())(image), expected)


def test_recogniser_input_table_is_the_per_pixel_normalisation():
    from imagescan.analyzers.plates.rapid import REC_INPUT

    crop = np.random.default_rng(5).integers(0, 256, (48, 77, 3), dtype=np.uint8)
    crop[0, :, :] = np.arange(77)[:, None] * 3 + np.arange(3)  # and a run of distinct bytes
    expected = (crop.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    assert np.array_equal(np.take(REC_INPUT, crop.transpose(2, 0, 1)), expected)
