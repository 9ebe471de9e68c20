"""rest-client.py against a real HTTP server on the test stack."""

import json
import subprocess
import sys
import threading

import pytest
from werkzeug.serving import make_server

from tests.conftest import REPO_ROOT
from tests.imagefactory import jpeg


@pytest.fixture
def server(app):
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{http.server_port}"
    http.shutdown()


def client_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "rest-client.py"), *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_upload_a_folder_and_wait_for_every_analysis(server, start_worker, tmp_path):
    start_worker()
    for seed in range(3):
        (tmp_path / f"img{seed}.jpg").write_bytes(jpeg(seed=60 + seed))
    (tmp_path / "notes.txt").write_text("not an image, not sent")
    result = client_run("--host", server, "upload", str(tmp_path), "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    hashes = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert sorted(hashes) == sorted(str(tmp_path / f"img{i}.jpg") for i in range(3))
    assert result.stdout.count(" done ") == 3

    shown = client_run("--host", server, "show", next(iter(hashes.values())))
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "done"


def test_failed_upload_is_reported_with_the_reason(server, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"no image here")
    result = client_run("--host", server, "upload", str(tmp_path / "broken.jpg"))
    assert result.returncode == 1
    assert "415" in result.stderr


def test_course_invocation_uploads_a_file_reps_times(server, tmp_path):
    photo = tmp_path / "car.jpg"
    photo.write_bytes(jpeg(seed=70))
    result = client_run(server, "image", str(photo), "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('Response is {"hash":') == 2


def test_unreachable_host_is_a_clear_error():
    result = client_run("--host", "127.0.0.1:1", "license", "ABC123")
    assert result.returncode == 2
    assert "cannot reach" in result.stderr
