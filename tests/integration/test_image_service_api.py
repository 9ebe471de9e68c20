"""Image-service API (keys, upload links, uploads, originals, stats) against real servers."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime

import pytest
from PIL import Image

from imagescan import keys
from imagescan.digests import Digests
from rest import auth
from rest.api import image_service
from tests import imagefactory

KEY = {"x-api-key": "test-key-1"}
OTHER_KEY = {"x-api-key": "test-key-2"}


@pytest.fixture
def make_client(settings):
    """Test clients of apps with other settings; their broker connections are closed after."""
    from rest.app import create_app

    apps = []

    def make(**changes):
        app = create_app(settings.replace(**changes))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["imagescan"].publisher.close()


def _png(colour=(10, 20, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _link(client, expiry=None) -> str:
    body = {} if expiry is None else {"expiry": expiry}
    response = client.post("/api/generate-upload-link", json=body, headers=KEY)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["upload_id"]


def _upload(client, upload_id: str, files: list[tuple[bytes, str]], headers=KEY):
    return client.post(
        f"/api/upload-images/{upload_id}",
        data={"image_files": [(io.BytesIO(data), name) for data, name in files]},
        content_type="multipart/form-data", headers=headers,
    )


# -- keys ------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("post", "/api/generate-upload-link"),
    ("post", f"/api/upload-images/{uuid.uuid4()}"),
    ("get", "/api/stats"),
])
def test_missing_key_is_403_and_wrong_key_is_401(client, method, path):
    missing = getattr(client, method)(path)
    wrong = getattr(client, method)(path, headers={"x-api-key": "guess"})

    assert missing.status_code == 403
    assert missing.get_json() == {"error": "missing x-api-key header", "status": 403}
    assert wrong.status_code == 401
    assert wrong.get_json()["status"] == 401


def test_every_configured_key_is_accepted(client):
    assert client.get("/api/stats", headers=KEY).status_code == 200
    assert client.get("/api/stats", headers=OTHER_KEY).status_code == 200


def test_wrong_keys_are_rate_limited_per_client(client):
    for _ in range(auth.MAX_FAILURES):
        assert client.get("/api/stats", headers={"x-api-key": "guess"}).status_code == 401

    locked = client.get("/api/stats", headers={"x-api-key": "guess"})
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= auth.FAILURE_WINDOW_SECONDS
    # Even the right key waits: otherwise guessing could go on until it succeeds.
    assert client.get("/api/stats", headers=KEY).status_code == 429
    other_client = client.get("/api/stats", headers=KEY, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    assert other_client.status_code == 200


def test_without_configured_keys_the_routes_are_disabled(make_client):
    client = make_client(api_keys=())

    response = client.get("/api/stats", headers=KEY)

    assert response.status_code == 503
    assert "API_KEY" in response.get_json()["error"]


def test_key_comparison():
    assert auth.key_matches("b", ("a", "b"))
    assert not auth.key_matches("c", ("a", "b"))
    assert not auth.key_matches("", ("a",))
    assert not auth.key_matches("a", ())


# -- upload links ----------------------------------------------------------------


def test_upload_link_lives_for_its_expiry(app, client):
    upload_id = _link(client, expiry=120)
    uuid.UUID(upload_id)

    ttl = app.extensions["imagescan"].redis.ttl(keys.upload_link(upload_id))

    assert 110 < ttl <= 120


def test_upload_link_default_expiry_is_60_seconds(app, client):
    response = client.post("/api/generate-upload-link", headers=KEY)  # no body at all

    assert response.get_json()["expiry"] == 60
    ttl = app.extensions["imagescan"].redis.ttl(keys.upload_link(response.get_json()["upload_id"]))
    assert 50 < ttl <= 60


def test_expired_upload_link_is_404(client):
    upload_id = _link(client, expiry=1)
    assert _upload(client, upload_id, [(_png(), "a.png")]).status_code == 200

    time.sleep(2.1)  # Redis expires the link; nothing else removes it

    response = _upload(client, upload_id, [(_png((1, 1, 1)), "b.png")])
    assert response.status_code == 404
    assert "expired" in response.get_json()["error"]


@pytest.mark.parametrize("body", [
    b"{not json", b"[60]", b'{"expiry": 0}', b'{"expiry": 86401}', b'{"expiry": "soon"}',
    b'{"expiry": true}', b'{"expiry": 1.5}', b'{"expiry": -5}',
])
def test_bad_upload_link_requests_are_400(client, body):
    response = client.post("/api/generate-upload-link", data=body, headers=KEY,
                           content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["status"] == 400


# -- uploads ---------------------------------------------------------------------


def test_upload_images_maps_each_filename_to_its_sha256(client):
    first, second = _png((1, 2, 3)), imagefactory.jpeg(seed=4)
    upload_id = _link(client)

    response = _upload(client, upload_id, [(first, "foo-1.png"), (second, "foo-2.jpg")])

    assert response.status_code == 200
    assert response.get_json() == {"foo-1.png": Digests.of(first).sha256,
                                   "foo-2.jpg": Digests.of(second).sha256}


def test_a_repeated_image_keeps_its_first_id_and_counts_once(client, app):
    data = _png((9, 9, 9))
    upload_id = _link(client)
    first = _upload(client, upload_id, [(data, "one.png")]).get_json()
    redis = app.extensions["imagescan"].redis
    today = datetime.now(UTC).date().isoformat()
    counted = int(redis.get(keys.uploads_on_day(today)))

    again = _upload(client, upload_id, [(data, "two.png")]).get_json()

    assert again == {"two.png": first["one.png"]}
    assert int(redis.get(keys.uploads_on_day(today))) == counted


def test_unknown_upload_id_is_404(client):
    for upload_id in (str(uuid.uuid4()), "not-a-uuid"):
        assert _upload(client, upload_id, [(_png(), "a.png")]).status_code == 404


def test_a_non_image_refuses_the_batch_and_names_the_file(client, app):
    good = _png((7, 7, 7))
    upload_id = _link(client)

    response = _upload(client, upload_id, [(good, "good.png"), (b"hello, world", "notes.txt")])

    assert response.status_code == 415
    assert response.get_json()["file"] == "notes.txt"
    assert "notes.txt" in response.get_json()["error"]
    assert app.extensions["imagescan"].store.resolve(Digests.of(good).sha256) is None


def test_upload_without_files_is_400(client):
    response = client.post(f"/api/upload-images/{_link(client)}", headers=KEY,
                           data={}, content_type="multipart/form-data")

    assert response.status_code == 400


# -- originals -------------------------------------------------------------------


def test_original_bytes_need_no_key_and_have_their_type(client):
    png, jpeg = _png((50, 60, 70)), imagefactory.jpeg(seed=8)
    ids = _upload(client, _link(client), [(png, "a.png"), (jpeg, "b.jpg")]).get_json()

    png_response = client.get(f"/api/images/{ids['a.png']}")
    jpeg_response = client.get(f"/api/images/{Digests.of(jpeg).md5}")

    assert png_response.status_code == 200 and png_response.data == png
    assert png_response.mimetype == "image/png"
    assert jpeg_response.data == jpeg and jpeg_response.mimetype == "image/jpeg"
    revalidated = client.get(f"/api/images/{ids['a.png']}",
                             headers={"If-None-Match": png_response.headers["ETag"]})
    assert revalidated.status_code == 304


def test_unknown_original_is_404_json(client):
    response = client.get(f"/api/images/{'a' * 64}")

    assert response.status_code == 404
    assert response.get_json()["status"] == 404


# -- stats -----------------------------------------------------------------------


def test_stats_has_exactly_the_three_keys_when_empty(client):
    body = client.get("/api/stats", headers=KEY).get_json()

    assert body == {image_service.FREQUENCY_KEY: {}, image_service.FORMAT_KEY: None,
                    image_service.CAMERAS_KEY: []}


def test_stats_count_uploads_formats_and_cameras(client, app):
    store = app.extensions["imagescan"].store
    images = {
        "pixel-1.jpg": (imagefactory.jpeg(seed=61), "JPEG", "Google - Pixel 6a"),
        "pixel-2.jpg": (imagefactory.jpeg(seed=62), "JPEG", "Google - Pixel 6a"),
        "sony.jpg": (imagefactory.jpeg(seed=63), "JPEG", "SONY - ILCE-7M2"),
        "a.png": (_png((4, 5, 6)), "PNG", None),
    }
    upload_id = _link(client)
    ids = _upload(client, upload_id, [(data, name) for name, (data, _, _) in images.items()]).get_json()
    # What the worker records when its analysis ends.
    for name, (_, fmt, camera) in images.items():
        store.save_analysis(ids[name], format=fmt, width=16, height=16, results={"plates": []},
                            camera_label=camera)
    _upload(client, upload_id, [(images["a.png"][0], "again.png")])  # a repeat is not counted

    body = client.get("/api/stats", headers=KEY).get_json()

    today = datetime.now(UTC).date().isoformat()
    assert list(body) == [image_service.FREQUENCY_KEY, image_service.FORMAT_KEY, image_service.CAMERAS_KEY]
    assert body[image_service.FREQUENCY_KEY] == {today: 4}
    assert body[image_service.FORMAT_KEY] == "JPEG"
    assert body[image_service.CAMERAS_KEY] == ["Google - Pixel 6a", "SONY - ILCE-7M2"]


def test_mpo_counts_as_jpeg(client, app):
    redis = app.extensions["imagescan"].redis
    redis.zadd(keys.format_counts(), {"PNG": 3, "JPEG": 2, "MPO": 2})

    body = client.get("/api/stats", headers=KEY).get_json()

    assert body[image_service.FORMAT_KEY] == "JPEG"
