"""The plates API end to end: REST -> RabbitMQ -> worker -> Redis -> REST, on real servers."""

import hashlib

import pytest

from imagescan.platetext import normalize_plate
from tests.conftest import shared_data, wait_for_status
from tests.imagefactory import jpeg, undecodable_but_whole_jpeg, with_gps

# A Brazilian photo whose plate the default engine reads right (see bench/plates.py).
PLATE_PHOTO = ("plates", "br", "AYO9034.jpg")


def plate_photo() -> tuple[bytes, str]:
    path = shared_data(*PLATE_PHOTO)
    truth = path.with_suffix(".txt").read_text().split("\t")[5].strip()
    return path.read_bytes(), normalize_plate(truth)


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_upload_answers_the_md5_and_records_the_filename(client, method):
    data = jpeg(seed=7)
    response = client.open("/image/car.jpg", method=method, data=data, content_type="image/png")
    assert response.status_code == 200
    assert response.get_json() == {"hash": hashlib.md5(data).hexdigest()}
    document = client.get(f"/images/{hashlib.md5(data).hexdigest()}").get_json()
    assert document["names"] == ["car.jpg"]
    assert document["status"] == "queued"
    assert document["digests"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_every_digest_finds_the_image(client):
    data = jpeg(seed=8)
    client.put("/image/a.jpg", data=data)
    for digest in (hashlib.md5(data), hashlib.sha224(data), hashlib.sha256(data)):
        assert client.get(f"/images/{digest.hexdigest()}").status_code == 200


def test_second_name_for_the_same_bytes_is_added_once(client):
    data = jpeg(seed=9)
    for name in ("one.jpg", "two.jpg", "one.jpg"):
        client.put(f"/image/{name}", data=data)
    assert client.get(f"/images/{hashlib.md5(data).hexdigest()}").get_json()["names"] == ["one.jpg", "two.jpg"]


def test_unknown_checksums_and_plates_answer_empty_lists(client):
    assert client.get("/hash/" + "0" * 32).get_json() == []
    assert client.get("/hash/not-a-hash").get_json() == []
    assert client.get("/license/ZZZ9999").get_json() == []
    missing = client.get("/images/" + "0" * 32)
    assert missing.status_code == 404
    assert "error" in missing.get_json()


@pytest.mark.parametrize(
    "body, status",
    [(b"", 400), (b"just some text", 415), (jpeg(300, 200)[:200], 400)],
    ids=["empty", "not-an-image", "truncated"],
)
def test_bad_uploads_get_a_json_4xx(client, body, status):
    response = client.post("/image/bad.jpg", data=body)
    assert response.status_code == status
    assert response.is_json and response.get_json()["error"]


def test_body_over_the_limit_is_413(client, settings):
    too_big = b"\xff\xd8" + b"0" * (settings.max_upload_bytes + 10)
    response = client.post("/image/huge.jpg", data=too_big)
    assert response.status_code == 413
    assert response.is_json


def test_plate_photo_end_to_end(client, start_worker):
    data, truth = plate_photo()
    start_worker()
    md5 = client.put("/image/car.jpg", data=data).get_json()["hash"]
    document = wait_for_status(client, md5)
    assert document["status"] == "done", document
    assert document["format"] == "JPEG" and document["width"] > 0
    best = document["plates"][0]
    assert best["plate"] == truth
    assert 0 < best["confidence"] <= 1
    assert set(best["box"]) == {"x", "y", "w", "h"}
    assert best["candidates"][0]["plate"] == truth
    # Plates without a geotag: /hash stays empty (course semantics), /license finds it.
    assert client.get(f"/hash/{md5}").get_json() == []
    assert client.get(f"/license/{truth}").get_json() == [md5]
    assert client.get(f"/license/{truth.lower()}").get_json() == [md5]


def test_geotagged_plate_photo_shows_plate_and_coordinates(client, start_worker):
    data, truth = plate_photo()
    tagged = with_gps(data, 48.1486, 17.1077)
    start_worker()
    md5 = client.post("/image/tagged.jpg", data=tagged, content_type="image/png").get_json()["hash"]
    assert wait_for_status(client, md5)["status"] == "done"
    entries = client.get(f"/hash/{md5}").get_json()
    assert [e["license"] for e in entries][:1] == [truth]
    assert entries[0]["latitude"] == pytest.approx(48.1486, abs=1e-4)
    assert entries[0]["longitude"] == pytest.approx(17.1077, abs=1e-4)
    assert 0 < entries[0]["confidence"] <= 1
    assert md5 in client.get(f"/license/{truth}").get_json()


def test_image_without_plates_is_done_with_no_plates(client, start_worker):
    start_worker()
    md5 = client.put("/image/plain.jpg", data=jpeg(seed=11)).get_json()["hash"]
    document = wait_for_status(client, md5)
    assert document["status"] == "done"
    assert document["plates"] == [] and document["geotag"] is None


def test_image_the_worker_cannot_decode_ends_failed_with_a_reason(app, settings, start_worker, client):
    """A truncated file that reached the queue (put there directly: the REST refuses it)."""
    from imagescan import topology
    from imagescan.digests import Digests

    good = jpeg(640, 480, seed=12)
    broken = good[: len(good) // 2]
    services = app.extensions["imagescan"]
    digests = Digests.of(broken)
    services.blobs.put(digests.sha256, broken)
    services.store.register_upload(digests, len(broken), "broken.jpg")
    services.publisher.publish(topology.ANALYZE, sha256=digests.sha256)
    start_worker()
    document = wait_for_status(client, digests.md5)
    assert document["status"] == "failed"
    assert "truncated" in document["error"] or "corrupt" in document["error"]
    # The worker goes on: the next image is analysed.
    md5 = client.put("/image/after.jpg", data=jpeg(seed=13)).get_json()["hash"]
    assert wait_for_status(client, md5)["status"] == "done"


def test_a_whole_jpeg_whose_pixels_cannot_be_decoded_is_accepted_then_failed(client, start_worker):
    """The REST checks a JPEG's structure, not its compressed pixels: the worker's full
    decode finds what is wrong inside, and the record says so (the upload is not lost)."""
    data = undecodable_but_whole_jpeg()
    response = client.put("/image/inside-broken.jpg", data=data)
    assert response.status_code == 200
    start_worker()
    document = wait_for_status(client, response.get_json()["hash"])
    assert document["status"] == "failed"
    assert "corrupt or truncated JPEG" in document["error"]
    assert document["names"] == ["inside-broken.jpg"]


def test_upload_answers_503_when_the_broker_is_down(settings, worker_services):
    from rest.app import create_app

    broken = settings.replace(rabbitmq_port=1, network_timeout=1.0)
    client = create_app(broken).test_client()
    response = client.put("/image/x.jpg", data=jpeg(seed=14))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    # Still ready: reads need only Redis, and uploads answer 503 JSON by themselves.
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "degraded", "checks": {"redis": "ok", "rabbitmq": "down"}}
    assert client.get("/images/" + "ab" * 32).status_code == 404  # a Redis read still answers
    assert client.get("/healthz").status_code == 200


def test_readyz_is_503_when_redis_is_down(settings):
    from rest.app import create_app

    client = create_app(settings.replace(redis_port=1, network_timeout=1.0)).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["checks"]["redis"] == "down"


def test_readyz_is_200_with_both_servers_up(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"redis": "ok", "rabbitmq": "ok"}
