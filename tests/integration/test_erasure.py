"""Erasure on real servers: after DELETE /images/<digest> nothing reveals the image or its faces,
Redis holds no key or value naming it, the blob store holds none of its bytes; an erasure
during the analysis leaves nothing; retention erases exactly the images past their age."""

from __future__ import annotations

import hashlib
import io
import threading
import time

import pytest

from imagescan import erasure, faceindex, keys
from imagescan.digests import Digests
from imagescan.facestore import FaceStore
from tests.conftest import wait_for_status
from tests.imagefactory import jpeg, with_gps
from tests.integration.test_faces_api import BIDEN, OBAMA_1, OBAMA_2, OBAMA_AND_BIDEN, face_photo
from tests.integration.test_plates_api import plate_photo
from tests.integration.traces import file_traces, redis_traces

ADMIN = {"x-api-key": "test-key-1"}  # seed mode: an API_KEY value may erase


def scan(client, name: str, data: bytes) -> Digests:
    response = client.post(f"/scan/image/{name}", data=data, content_type="image/jpg")
    assert response.status_code == 200, response.get_json()
    return Digests.of(data)


def scan_and_wait(client, name: str, data: bytes) -> Digests:
    digests = scan(client, name, data)
    assert wait_for_status(client, digests.sha256)["status"] == "done"
    return digests


def finished_job(client, data: bytes) -> str:
    response = client.post("/jobs", data={"image": (io.BytesIO(data), "job.jpg")},
                           content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job_id"]
    deadline = time.monotonic() + 90
    while client.get(f"/jobs/{job_id}").status_code != 201:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)
    return job_id


def wait_processed(worker, count: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while worker.consumer.processed < count:
        assert time.monotonic() < deadline, "the worker did not finish the message"
        time.sleep(0.05)


def nothing_reveals(client, digests: Digests, job_ids=()) -> None:
    for digest in (digests.md5, digests.sha224, digests.sha256):
        assert client.get(f"/images/{digest}").status_code == 404
        assert client.get(f"/hash/{digest}").get_json() == []
        assert client.get(f"/match/{digest}").get_json() == []
        assert client.get(f"/api/images/{digest}").status_code == 404
        for operation in ("jpeg", "png", "grayscale", "mirror"):
            assert client.get(f"/{digest}/{operation}").status_code == 404
    for job_id in job_ids:
        assert client.get(f"/jobs/{job_id}").status_code == 404
        assert client.get(f"/jobs/{job_id}/output").status_code == 404


def stored_encoding(redis_client, sha256: str):
    (face,) = faceindex.faces_for(redis_client, sha256)
    return FaceStore(redis_client).encodings([face["id"]])[face["id"]]


def test_delete_removes_the_image_its_faces_jobs_and_transforms(client, redis_client, worker_services, start_worker):
    services = worker_services()
    start_worker(services)
    data = face_photo(OBAMA_1)
    erased = scan_and_wait(client, "obama1.jpg", data)
    other = scan_and_wait(client, "obama2.jpg", face_photo(OBAMA_2))
    assert client.put("/image/copy-of-obama1.jpg", data=data).status_code == 200
    job_id = finished_job(client, data)
    output = client.get(f"/jobs/{job_id}/output").data
    grayscale = client.get(f"/{erased.sha256}/grayscale")
    assert grayscale.status_code == 200
    assert client.get(f"/match/{other.sha224}").get_json() == ["obama1.jpg", "copy-of-obama1.jpg", "job.jpg"]
    encoding = stored_encoding(redis_client, erased.sha256)
    assert erased.sha256 in dict(services.face_index.match_encodings([encoding]))
    stats_before = client.get("/api/stats", headers=ADMIN).get_json()

    response = client.delete(f"/images/{erased.md5}", headers=ADMIN)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["sha256"] == erased.sha256 and body["status"] == "erased"
    assert body["removed"]["faces"] == 1 and body["removed"]["jobs"] == 1 and body["removed"]["names"] == 3
    nothing_reveals(client, erased, [job_id])
    assert client.get(f"/match/{other.sha224}").get_json() == []
    assert [f["matches"] for f in client.get(f"/images/{other.sha256}").get_json()["faces"]] == [[]]
    assert redis_traces(redis_client, [erased.md5, erased.sha224, erased.sha256, data, output,
                                       grayscale.data, hashlib.sha256(output).hexdigest()]) == []
    # every worker's in-memory index forgets the faces at its next sync
    assert erased.sha256 not in dict(services.face_index.match_encodings([encoding]))
    stats_after = client.get("/api/stats", headers=ADMIN).get_json()
    day_counts = "Image Upload Frequency Per Day (last 30 days)"
    assert sum(stats_after[day_counts].values()) == sum(stats_before[day_counts].values()) - 1
    # a later photo of the same person matches the remaining photo only
    later = scan_and_wait(client, "both.jpg", face_photo(OBAMA_AND_BIDEN))
    assert client.get(f"/match/{later.sha256}").get_json() == ["obama2.jpg"]
    # idempotent: again by any digest, within the tombstone's life; unknown digests 404
    for digest in (erased.sha256, erased.sha224, erased.md5):
        again = client.delete(f"/images/{digest}", headers=ADMIN)
        assert again.status_code == 200 and again.get_json()["status"] == "already erased"
    assert client.delete("/images/" + "ab" * 32, headers=ADMIN).status_code == 404
    assert client.delete("/images/nonsense", headers=ADMIN).status_code == 404


def test_plates_and_the_directory_blob_store_keep_nothing(settings, redis_client, worker_services, start_worker,
                                                         tmp_path):
    from rest.app import create_app

    settings = settings.replace(blob_store="dir", blob_dir=str(tmp_path / "blobs"))
    app = create_app(settings)
    client = app.test_client()
    start_worker(worker_services(settings=settings))
    photo, plate = plate_photo()
    tagged = with_gps(photo, 48.1486, 17.1077)
    kept = scan_and_wait(client, "kept.jpg", jpeg(seed=5))
    erased = scan_and_wait(client, "tagged.jpg", tagged)
    job_id = finished_job(client, tagged)
    output = client.get(f"/jobs/{job_id}/output").data
    assert client.get(f"/license/{plate}").get_json() == [erased.md5]
    assert plate in {p.decode() for p in redis_client.smembers(keys.known_plates_of(plate))}

    assert client.delete(f"/images/{erased.sha224}", headers=ADMIN).status_code == 200

    nothing_reveals(client, erased, [job_id])
    assert client.get(f"/license/{plate}").get_json() == []
    assert plate not in {p.decode() for p in redis_client.smembers(keys.known_plates_of(plate))}
    assert redis_traces(redis_client, [erased.md5, erased.sha224, erased.sha256]) == []
    assert file_traces(tmp_path / "blobs", [tagged, output, erased.sha256.encode()]) == []
    assert client.get(f"/api/images/{kept.sha256}").status_code == 200  # the other image stays
    app.extensions["imagescan"].publisher.close()


class Pause:
    """Stops the worker at one point of an analysis until the test has erased the image."""

    def __init__(self):
        self.armed, self.reached, self.release = False, threading.Event(), threading.Event()

    def point(self) -> None:
        if self.armed:
            self.reached.set()
            assert self.release.wait(60)


class PausingFaces:
    def __init__(self, inner, pause: Pause):
        self.inner, self.pause = inner, pause

    def detect(self, pixels):
        found = self.inner.detect(pixels)
        self.pause.point()
        return found

    def __getattr__(self, name):
        return getattr(self.inner, name)


class PausingIndex:
    def __init__(self, inner, pause: Pause):
        self.inner, self.pause = inner, pause

    def add_image_faces(self, sha256, faces):
        matches = self.inner.add_image_faces(sha256, faces)
        self.pause.point()
        return matches

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("moment", ["before its faces are stored", "after its faces and matches are stored"])
def test_erasing_during_the_analysis_leaves_nothing(moment, client, redis_client, worker_services,
                                                   face_recognizer, start_worker):
    pause = Pause()
    if moment.startswith("before"):
        services = worker_services(faces=PausingFaces(face_recognizer, pause))
    else:
        services = worker_services()
        services.face_index = PausingIndex(services.face_index, pause)
    worker = start_worker(services)
    other = scan_and_wait(client, "obama2.jpg", face_photo(OBAMA_2))
    pause.armed = True
    data = face_photo(OBAMA_1)
    erased = scan(client, "obama1.jpg", data)
    assert pause.reached.wait(90)
    assert client.get(f"/images/{erased.sha256}").get_json()["status"] == "processing"
    job = client.post("/jobs", data={"image": (io.BytesIO(data), "job.jpg")},
                      content_type="multipart/form-data").get_json()["job_id"]

    assert client.delete(f"/images/{erased.sha256}", headers=ADMIN).status_code == 200
    pause.release.set()
    wait_processed(worker, 2)

    nothing_reveals(client, erased, [job])
    assert client.get(f"/match/{other.md5}").get_json() == []
    assert redis_traces(redis_client, [erased.md5, erased.sha224, erased.sha256, data]) == []
    assert faceindex.faces_for(redis_client, other.sha256)  # the other image keeps its face


def test_a_new_upload_after_an_erasure_is_a_new_image(client, start_worker):
    start_worker()
    data = face_photo(BIDEN)
    first = scan_and_wait(client, "biden.jpg", data)
    assert client.delete(f"/images/{first.sha256}", headers=ADMIN).status_code == 200
    again = scan_and_wait(client, "biden-again.jpg", data)
    document = client.get(f"/images/{again.sha256}").get_json()
    assert document["names"] == ["biden-again.jpg"] and len(document["faces"]) == 1


def test_delete_needs_an_api_key_in_seed_mode(client):
    digest = scan(client, "x.jpg", jpeg(seed=3)).sha256
    assert client.delete(f"/images/{digest}").status_code == 403
    assert client.delete(f"/images/{digest}", headers={"x-api-key": "wrong"}).status_code == 401
    assert client.get(f"/images/{digest}").status_code == 200


def test_retention_erases_exactly_the_images_past_their_age(app, client, redis_client):
    services = app.extensions["imagescan"]
    old = [scan(client, f"old{i}.jpg", jpeg(seed=40 + i)) for i in range(3)]
    time.sleep(0.5)
    cutoff_now = time.time() + 86400  # a day after the old uploads, less than a day after the recent one
    time.sleep(0.5)
    recent = scan(client, "recent.jpg", jpeg(seed=50))
    assert set(erasure.expired_images(services.redis, 1, now=cutoff_now)) == {d.sha256 for d in old}
    erased = erasure.erase_expired(services.store, services.blobs, 1, now=cutoff_now, batch=2)
    assert erased == 3
    for digests in old:
        assert client.get(f"/images/{digests.sha256}").status_code == 404
        assert redis_traces(redis_client, [digests.sha256, digests.md5, digests.sha224]) == []
    assert client.get(f"/images/{recent.sha256}").status_code == 200
    assert erasure.erase_expired(services.store, services.blobs, 1, now=cutoff_now) == 0


def test_one_retention_pass_per_interval_whatever_the_number_of_workers(app, client):
    services = app.extensions["imagescan"]
    scan(client, "a.jpg", jpeg(seed=60))
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(erasure.retention_pass(
        services.store, services.blobs, 30, 60, f"worker-{i}"))) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=lambda r: r is None) == [0, None, None, None]


def test_the_worker_retention_task_erases_in_the_background(settings, client, redis_client, worker_services):
    from worker.retention import RetentionTask

    aged, fresh = scan(client, "aged.jpg", jpeg(seed=70)), scan(client, "fresh.jpg", jpeg(seed=71))
    redis_client.zadd(keys.recent_images(keys.shard_of(aged.sha256)), {aged.sha256: time.time() - 3 * 86400}, xx=True)  # received 3 days ago
    services = worker_services(settings=settings.replace(retention_days=2, retention_interval=0.3))
    task = RetentionTask(services).start()
    try:
        deadline = time.monotonic() + 30
        while client.get(f"/images/{aged.sha256}").status_code != 404:
            assert time.monotonic() < deadline, "retention did not run"
            time.sleep(0.1)
    finally:
        task.stop()
    assert client.get(f"/images/{fresh.sha256}").status_code == 200
