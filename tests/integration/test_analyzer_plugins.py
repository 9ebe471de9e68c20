"""An analyzer from outside the package, end to end: registered by an entry point (a test
distribution's metadata, tests/analyzer_plugins.py), named in ANALYZERS, run by a real worker
on real RabbitMQ and Redis, its finding shown in `/images/<digest>` beside every usual field."""

from __future__ import annotations

import hashlib

import pytest
from PIL import ImageStat

from imagescan import keys
from imagescan.analyzers.base import Analyzer, Need
from tests.analyzer_plugins import register_analyzers
from tests.conftest import engine_free_worker, wait_for_status
from tests.imagefactory import jpeg, png, with_gps

BUILT_IN = ("plates", "faces", "exif")


class MeanColour(Analyzer):
    """The toy analyzer: one class, no index of its own, so its finding is kept with the image."""

    name = "mean_colour"
    needs = Need.PIXELS

    def analyze(self, pixels) -> dict:
        red, green, blue = (round(channel) for channel in ImageStat.Stat(pixels).mean)
        return {"red": red, "green": green, "blue": blue}


class ByteCount(Analyzer):
    name = "byte_count"
    needs = Need.ORIGINAL

    def analyze(self, original: bytes) -> int:
        return len(original)


@pytest.fixture
def toy_analyzers(tmp_path, monkeypatch):
    register_analyzers(tmp_path / "site", monkeypatch, {
        "mean_colour": f"{__name__}:MeanColour", "byte_count": f"{__name__}:ByteCount"})


def analysed(client, settings, data: bytes, name: str) -> dict:
    worker = engine_free_worker(settings)
    try:
        md5 = client.put(f"/image/{name}", data=data).get_json()["hash"]
        return wait_for_status(client, md5)
    finally:
        worker.stop()


def test_a_toy_analyzer_shows_its_finding_in_the_image_document(client, settings, toy_analyzers):
    data = png(color=(10, 200, 10, 255))
    document = analysed(client, settings.replace(analyzers=(*BUILT_IN, "mean_colour", "byte_count")),
                        data, "green.png")
    assert document["status"] == "done"
    assert document["mean_colour"] == {"red": 10, "green": 200, "blue": 10}
    assert document["byte_count"] == len(data)
    # Every usual field is there as before.
    assert document["plates"] == [] and document["faces"] == [] and document["geotag"] is None
    assert document["exif"] == {"make": None, "model": None, "taken_at": None}
    assert document["digests"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (document["format"], document["width"], document["height"]) == ("PNG", 32, 32)


def test_the_document_keeps_its_fields_when_analyzers_are_left_out(client, settings):
    data = with_gps(jpeg(seed=41), 48.8584, 2.2945, make="Canon", model="EOS 5D")
    document = analysed(client, settings.replace(analyzers=("exif",)), data, "tower.jpg")
    assert document["status"] == "done"
    assert document["exif"]["make"] == "Canon" and document["geotag"]["latitude"] == pytest.approx(48.8584)
    assert document["plates"] == [] and document["faces"] == []
    assert "mean_colour" not in document


def test_a_finding_is_stored_with_the_image_record(client, settings, toy_analyzers, redis_client):
    """Stored, not computed at read time: it is in the record's analysis even without a worker."""
    data = png(color=(0, 0, 250, 255))
    document = analysed(client, settings.replace(analyzers=("mean_colour",)), data, "blue.png")
    assert document["mean_colour"] == {"red": 0, "green": 0, "blue": 250}
    assert document["exif"] == {"make": None, "model": None, "taken_at": None}, "the defaults hold"
    stored = redis_client.hget(keys.image(document["digests"]["sha256"]), "analysis")
    assert b'"mean_colour"' in stored
