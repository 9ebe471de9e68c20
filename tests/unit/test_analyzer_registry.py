"""The analyzer registry (entry points), the ANALYZERS setting and the pipeline's views."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from imagescan.analyzers.base import Analyzer, Need
from imagescan.analyzers.registry import GROUP, check_names, installed, load_analyzers
from imagescan.config import ConfigError, Settings
from tests.analyzer_plugins import register_analyzers
from tests.conftest import REPO_ROOT
from tests.imagefactory import jpeg, with_gps


class Echo(Analyzer):
    """Finds the view it was given, whichever it needs."""

    name = "echo"
    needs = Need.ORIGINAL

    def analyze(self, view):
        return view


class SeesPixels(Echo):
    name = "sees_pixels"
    needs = Need.PIXELS


class SeesExif(Echo):
    name = "sees_exif"
    needs = Need.EXIF


class Misnamed(Echo):
    name = "something_else"


class Status(Echo):
    name = "status"  # a field of the image itself


class AlsoGeotag(Echo):
    name = "also_geotag"
    fields = ("geotag",)  # the exif analyzer's


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    names = ("echo", "sees_pixels", "sees_exif", "status", "also_geotag")
    targets = {name: f"{__name__}:{''.join(part.title() for part in name.split('_'))}" for name in names}
    register_analyzers(tmp_path, monkeypatch, {**targets, "misnamed": f"{__name__}:Misnamed"})


def worker(**settings):
    return SimpleNamespace(settings=Settings(**settings), plates=None, faces=None, face_index=None)


def test_the_built_in_analyzers_are_entry_points_of_the_package():
    points = installed()
    for name in ("plates", "faces", "exif"):
        assert points[name].group == GROUP
        assert points[name].value.startswith(f"imagescan.analyzers.kinds.{name}:")
        assert points[name].load().name == name


def test_analyzers_setting_is_a_list_in_order():
    assert Settings().analyzers == ("plates", "faces", "exif")
    assert Settings.from_env({"ANALYZERS": "exif, plates"}).analyzers == ("exif", "plates")


@pytest.mark.parametrize(("names", "message"), [
    (("plates", "colour"), "ANALYZERS names 'colour', which no installed analyzer provides"),
    (("exif", "exif"), "ANALYZERS names exif more than once"),
    ((), "ANALYZERS must name at least one analyzer"),
])
def test_bad_names_are_refused_with_a_clear_message(names, message):
    with pytest.raises(ConfigError, match=message) as refused:
        check_names(names)
    if "installed" in message:
        assert "installed: exif, faces, plates" in str(refused.value)


def test_an_analyzer_installed_by_another_distribution_is_found(plugins):
    assert installed()["echo"].value == f"{__name__}:Echo"
    analyzers = load_analyzers(("exif", "echo"), worker())
    assert [a.name for a in analyzers] == ["exif", "echo"]
    assert analyzers[1].record("0" * 64, b"x") == {"echo": b"x"}, "kept under its name by default"


@pytest.mark.parametrize(("names", "message"), [
    (("misnamed",), "registered as 'misnamed' but calls itself 'something_else'"),
    (("status",), "would overwrite the image's 'status'"),
    (("exif", "also_geotag"), "the analyzers 'exif' and 'also_geotag' both fill 'geotag'"),
])
def test_analyzers_that_would_clash_are_refused(plugins, names, message):
    with pytest.raises(ConfigError, match=message):
        load_analyzers(names, worker())


def test_each_analyzer_is_given_the_view_it_needs(plugins):
    from worker import pipeline

    data = with_gps(jpeg(width=40, height=30), 1.5, 2.5)
    services = worker(analyzers=("echo", "sees_pixels", "sees_exif", "exif"))
    services.analyzers = load_analyzers(services.settings.analyzers, services)
    services.blobs = SimpleNamespace(get=lambda sha256: data)
    outcome = pipeline.analyze(services, "0" * 64)
    findings = outcome["findings"]
    assert findings["echo"] == data
    assert findings["sees_pixels"].mode == "RGB" and findings["sees_pixels"].size == (40, 30)
    assert findings["sees_exif"] is not None and findings["exif"]["geotag"]["latitude"] == pytest.approx(1.5)
    results = pipeline.record(services, "0" * 64, {**findings, "echo": 1, "sees_pixels": 2, "sees_exif": 3})
    assert set(results) == {"echo", "sees_pixels", "sees_exif", "exif", "geotag"}
    assert pipeline.camera_label(results) == "Canon - EOS 5D"


def test_the_worker_stops_at_once_on_an_unknown_analyzer():
    result = subprocess.run([sys.executable, "-m", "worker"], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                            env={"ANALYZERS": "plates,colour", "PATH": ""}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "worker: configuration error: ANALYZERS names 'colour', which no installed analyzer provides")


def test_a_worker_built_from_settings_runs_the_engines_they_name():
    from imagescan.analyzers import NoFaces, NoPlates
    from worker.services import WorkerServices

    services = WorkerServices.build(Settings(plate_engine="none", face_engine="none", analyzers=("faces", "plates")))
    faces, plates = services.analyzers
    assert isinstance(plates.engine, NoPlates) and isinstance(faces.engine, NoFaces)
    services.redis.close()
