"""Failures in the middle of a step, on real servers: nothing is recorded as what it is not."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import redis

from imagescan import job_records as jobs
from imagescan import keys
from imagescan.analyzers import Box, FaceFound
from imagescan.faceindex import FaceIndex, faces_for
from imagescan.facestore import partition_of_face
from tests.conftest import wait_for_status
from tests.imagefactory import jpeg


def test_a_broken_plate_engine_is_a_failed_attempt_not_an_image_without_plates(
        client, start_worker, plate_recognizer, monkeypatch):
    def out_of_memory(_pixels):
        raise MemoryError("the detector could not allocate its input")

    monkeypatch.setattr(plate_recognizer, "_recognize", out_of_memory)
    start_worker()
    md5 = client.put("/image/car.jpg", data=jpeg(160, 120, seed=500)).get_json()["hash"]
    document = wait_for_status(client, md5, timeout=120)
    assert document["status"] == "failed", "an engine failure was recorded as an analysis"
    assert "attempts" in document["error"]


def test_the_openalpr_backend_lets_an_engine_failure_through():
    from PIL import Image

    from imagescan.analyzers.plates.openalpr import OpenAlprPlateRecognizer

    class BrokenAlpr:
        def recognize_array(self, _data):
            raise RuntimeError("libopenalpr lost its runtime data")

    engine = object.__new__(OpenAlprPlateRecognizer)
    engine._alpr = BrokenAlpr()
    with pytest.raises(RuntimeError):
        engine.recognize(Image.new("RGB", (64, 48)))


class DiesAfterOneCommand:
    """The real client, but the process 'dies' (ConnectionError) after its first command."""

    def __init__(self, client):
        self.client, self.commands = client, 0

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            self.commands += 1
            if self.commands > 1:
                raise redis.ConnectionError("the worker died here")
            return method(*args, **kwargs)
        return call


@pytest.mark.parametrize("finish", [
    lambda client, job_id, sha: jobs.complete(client, job_id, sha, "ff" * 32, "image/png"),
    lambda client, job_id, sha: jobs.fail(client, job_id, sha, "the analysis failed"),
], ids=["complete", "fail"])
def test_a_job_finish_cut_short_by_a_crash_is_completed_by_the_redelivery(redis_client, finish):
    # Finishing is two single-slot steps (the job's record, then the image's waiting set; see
    # imagescan.job_records): a crash between leaves the job listed as waiting, and the work
    # delivered again finishes it again, which takes it off the list.
    job_id, sha = str(uuid.uuid4()), "ab" * 32
    jobs.create(redis_client, job_id, sha)
    try:
        finish(DiesAfterOneCommand(redis_client), job_id, sha)
    except redis.ConnectionError:
        pass
    assert jobs.get(redis_client, job_id).finished
    assert job_id.encode() in redis_client.smembers(keys.image_jobs(sha))  # the crash cut it short
    finish(redis_client, job_id, sha)  # the redelivery
    job = jobs.get(redis_client, job_id)
    if job.finished:  # then all of it: it expires and no longer waits on the image
        assert redis_client.ttl(keys.job(job_id)) > 0
        assert job_id.encode() not in redis_client.smembers(keys.image_jobs(sha))


def face(seed: int, spread: float = 0.0) -> FaceFound:
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=128)
    vector = vector / np.linalg.norm(vector) + np.random.default_rng(seed + 1000).normal(scale=spread, size=128)
    return FaceFound(box=Box(1, 2, 3, 4), encoding=tuple(vector.astype(np.float32).tolist()))


def sha(label: str) -> str:
    return (label.encode().hex() * 64)[:64]


def test_the_face_index_notices_the_face_counter_going_backwards(redis_client):
    """Redis restored from a snapshot that lost the last face: its number is handed out again."""
    long_lived = FaceIndex(redis_client)
    long_lived.add_image_faces(sha("same-alice"), [face(1)])  # "same": one face partition for all
    long_lived.add_image_faces(sha("same-bob"), [face(2)])  # the partition's face number 2, lost below
    [bob] = faces_for(redis_client, sha("same-bob"))
    partition = partition_of_face(bob["id"])
    redis_client.hset(keys.face_partition(partition).state, mapping={"seq": 1, "stamp": "restored"})
    redis_client.hdel(keys.face_partition(partition).records, bob["id"])
    redis_client.hdel(keys.face_partition(partition).image_ids, sha("same-bob"))
    redis_client.delete(keys.image_faces(sha("same-bob")))
    FaceIndex(redis_client).add_image_faces(sha("same-carol"), [face(3)])  # another worker: number 2 again
    assert faces_for(redis_client, sha("same-carol"))[0]["id"] == bob["id"]

    found = long_lived.add_image_faces(sha("same-carol-2"), [face(3, spread=0.01)])
    assert [other for other, _ in found] == [sha("same-carol")], "the reused id was skipped"
    assert long_lived.match_encodings([face(2).encoding]) == [], "a face Redis lost is still matched"
