"""Jobs API against real Redis and RabbitMQ, with a real worker where the test needs one."""

from __future__ import annotations

import io
import time
import types
import uuid

import pytest
from PIL import Image

from imagescan import job_records as jobs
from imagescan import keys, render
from imagescan.digests import Digests
from tests import imagefactory
from tests.conftest import WorkerThread
from worker import job_outputs as worker_jobs


@pytest.fixture
def start_worker(worker_services):
    """Real workers (consumer + handler) without recognition engines: the jobs need only the
    analysis to end, and an engine-free worker makes that quick and independent of models."""
    from imagescan.analyzers import NoFaces, NoPlates

    started: list[WorkerThread] = []

    def start() -> WorkerThread:
        worker = WorkerThread(worker_services(plates=NoPlates(), faces=NoFaces())).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _png_bytes(size=(160, 120), colour=(0, 0, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _post_job(client, data: bytes, filename: str = "photo.jpg"):
    return client.post("/jobs", data={"image": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def _wait_for_job(client, location: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(location)
        if response.status_code == 201 or response.get_json()["status"] == "failed":
            return response
        time.sleep(0.1)
    raise AssertionError(f"{location} did not finish in {timeout}s: {response.get_json()}")


def _worker_side(app):
    """The worker's view of the same servers, to call the worker hooks directly."""
    services = app.extensions["imagescan"]
    return types.SimpleNamespace(settings=services.settings, redis=services.redis,
                                 store=services.store, blobs=services.blobs)


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_job_completes_with_a_worker(client, start_worker):
    start_worker()
    data = imagefactory.jpeg(120, 80, seed=11)

    accepted = _post_job(client, data)

    assert accepted.status_code == 202
    body = accepted.get_json()
    assert uuid.UUID(body["job_id"]).version == 4
    assert body["status"] == "pending"
    assert accepted.headers["Location"] == body["location"] == f"/jobs/{body['job_id']}"

    finished = _wait_for_job(client, body["location"])
    assert finished.status_code == 201
    output_location = f"/jobs/{body['job_id']}/output"
    assert finished.headers["Location"] == output_location
    assert finished.get_json()["output"] == output_location
    assert finished.get_json()["status"] == "completed"

    output = client.get(output_location)
    assert output.status_code == 200
    assert output.mimetype == "image/jpeg"
    assert _image(output.data).size == (120, 80)


def test_output_draws_the_plates_and_faces_of_the_analysis(app, client, start_worker):
    data = _png_bytes()
    sha256 = Digests.of(data).sha256
    services = app.extensions["imagescan"]
    # The image is known and its analysis is done before the job exists: the job must still
    # complete, through a render message.
    client.put("/image/car.png", data=data)
    plate = {"plate": "789SJL", "confidence": 0.9, "box": {"x": 40, "y": 60, "w": 70, "h": 30},
             "candidates": []}
    face = {"box": {"x": 5, "y": 5, "w": 20, "h": 20}}
    services.store.save_analysis(sha256, format="PNG", width=160, height=120,
                                 results={"plates": [plate], "faces": [face], "geotag": None},
                                 camera_label=None)
    start_worker()

    accepted = _post_job(client, data, "car.png")
    assert accepted.status_code == 202
    assert _wait_for_job(client, accepted.headers["Location"]).status_code == 201

    output = client.get(f"{accepted.headers['Location']}/output")
    assert output.mimetype == "image/png"
    drawn = _image(output.data).convert("RGB")
    assert drawn.getpixel((40, 75)) == render.PLATE_COLOUR
    assert drawn.getpixel((5, 15)) == render.FACE_COLOUR
    assert drawn.getpixel((150, 110)) == (0, 0, 0)
    job_id = accepted.get_json()["job_id"]
    assert services.redis.smembers(keys.image_jobs(sha256)) == set()
    stored = jobs.get(services.redis, job_id)
    assert services.blobs.get(stored.output) == output.data


def test_unfinished_job_points_at_its_status(client):
    accepted = _post_job(client, imagefactory.jpeg(seed=21))  # no worker: stays pending
    location = accepted.headers["Location"]

    status = client.get(location)
    assert status.status_code == 200
    assert status.get_json()["status"] == "pending"

    output = client.get(f"{location}/output")
    assert output.status_code == 202
    assert output.headers["Location"] == location
    assert output.get_json()["location"] == location


def test_job_of_a_broken_image_fails_with_the_reason(client):
    truncated = imagefactory.jpeg(200, 150, seed=3)[:-400]

    refused = _post_job(client, truncated)

    assert refused.status_code == 400
    location = refused.headers["Location"]
    assert refused.get_json()["location"] == location
    status = client.get(location)
    assert status.status_code == 200
    assert status.get_json()["status"] == "failed"
    assert "truncated" in status.get_json()["message"]
    output = client.get(f"{location}/output")
    assert output.status_code == 409
    assert "truncated" in output.get_json()["error"]


def test_job_whose_analysis_failed_ends_failed(app, client):
    data = imagefactory.jpeg(seed=31)
    sha256 = Digests.of(data).sha256
    accepted = _post_job(client, data)
    job_id = accepted.get_json()["job_id"]
    services = app.extensions["imagescan"]
    services.store.mark_failed(sha256, "the plate engine crashed")

    assert worker_jobs.render_jobs_for_image(_worker_side(app), sha256) == 1

    status = client.get(f"/jobs/{job_id}")
    assert status.status_code == 200
    assert status.get_json()["status"] == "failed"
    assert "the plate engine crashed" in status.get_json()["message"]


def test_render_message_for_a_queued_image_waits_for_the_analysis(app, client):
    data = imagefactory.jpeg(seed=41)
    accepted = _post_job(client, data)
    job_id = accepted.get_json()["job_id"]

    worker_jobs.handle_render(_worker_side(app), {"kind": "render", "job_id": job_id})

    assert client.get(f"/jobs/{job_id}").get_json()["status"] == "pending"


def test_job_that_cannot_be_queued_answers_500_with_its_location(settings):
    from rest.app import create_app

    unreachable_broker = settings.replace(rabbitmq_port=1, network_timeout=1.0)
    app = create_app(unreachable_broker)
    client = app.test_client()

    try:
        response = _post_job(client, imagefactory.jpeg(seed=51))
    finally:
        app.extensions["imagescan"].publisher.close()

    assert response.status_code == 500
    location = response.headers["Location"]
    assert response.get_json()["location"] == location
    status = client.get(location)
    assert status.get_json()["status"] == "failed"
    assert "unavailable" in status.get_json()["message"]


@pytest.mark.parametrize("path", [
    f"/jobs/{uuid.uuid4()}", f"/jobs/{uuid.uuid4()}/output", "/jobs/not-a-uuid", "/jobs/not-a-uuid/output",
])
def test_unknown_jobs_are_404_json(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response.get_json()["status"] == 404


def test_job_without_image_field_is_400(client):
    response = client.post("/jobs", data={"other": (io.BytesIO(b"x"), "x.jpg")},
                           content_type="multipart/form-data")

    assert response.status_code == 400
    assert "image" in response.get_json()["error"]


def test_job_fails_when_its_original_is_gone(app, client):
    data = _png_bytes(colour=(1, 2, 3))
    sha256 = Digests.of(data).sha256
    job_id = _post_job(client, data, "gone.png").get_json()["job_id"]
    services = app.extensions["imagescan"]
    services.store.save_analysis(sha256, format="PNG", width=160, height=120,
                                 results={"plates": []}, camera_label=None)
    services.redis.delete(keys.blob(sha256))

    worker_jobs.render_jobs_for_image(_worker_side(app), sha256)

    status = client.get(f"/jobs/{job_id}").get_json()
    assert status["status"] == "failed"
    assert "no longer stored" in status["message"]


def test_a_finished_job_stays_finished(redis_client):
    job_id, sha256 = jobs.new_job_id(), "ab" * 32
    jobs.create(redis_client, job_id, sha256)
    assert jobs.waiting_for(redis_client, sha256) == [job_id]

    assert jobs.complete(redis_client, job_id, sha256, "cd" * 32, "image/png")
    assert not jobs.fail(redis_client, job_id, sha256, "too late")
    assert not jobs.mark_processing(redis_client, job_id)

    job = jobs.get(redis_client, job_id)
    assert (job.status, job.output, job.content_type, job.message) == ("completed", "cd" * 32, "image/png", "")
    assert jobs.waiting_for(redis_client, sha256) == []
    assert 0 < redis_client.ttl(keys.job(job_id)) <= jobs.RETENTION_SECONDS


def test_a_waiting_job_does_not_expire(redis_client):
    job_id = jobs.new_job_id()
    jobs.create(redis_client, job_id, "ef" * 32)
    jobs.mark_processing(redis_client, job_id)

    assert redis_client.ttl(keys.job(job_id)) == -1


def test_job_ids_are_canonical_uuids():
    job_id = jobs.new_job_id()
    assert jobs.parse_job_id(job_id.upper()) == job_id
    assert jobs.parse_job_id("1234") is None
    assert jobs.parse_job_id("../../etc") is None
