"""Every blob store backend against its real server: Redis, a directory, S3 (moto's server)."""

from __future__ import annotations

import hashlib

import pytest

from imagescan.blobs import CHUNK_BYTES, open_blob_store
from imagescan.blobs.copy import copy_blobs
from imagescan.blobs.copy import main as copy_main
from imagescan.digests import Digests
from tests.conftest import engine_free_worker, wait_for_status
from tests.imagefactory import jpeg, noisy_jpeg, png

BACKENDS = ["redis", "dir", "s3"]


def backend_settings(request, settings, tmp_path, kind: str):
    if kind == "dir":
        return settings.replace(blob_store="dir", blob_dir=str(tmp_path / "blobs"))
    if kind == "s3":
        return request.getfixturevalue("s3_server").settings(settings)
    return settings.replace(blob_store="redis")


@pytest.fixture(params=BACKENDS)
def store_settings(request, settings, tmp_path):
    return backend_settings(request, settings, tmp_path, request.param)


@pytest.fixture
def blobs(store_settings):
    return open_blob_store(store_settings)


@pytest.fixture
def api(store_settings):
    from rest.app import create_app

    app = create_app(store_settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["imagescan"].publisher.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_read_ranges_list_and_delete(blobs):
    data = noisy_jpeg(seed=1)
    assert len(data) > CHUNK_BYTES
    name = sha(data)
    assert blobs.get(name) is None and blobs.stat(name) is None and blobs.open(name) is None
    blobs.put(name, data, "image/jpeg")
    blobs.put(name, data, "image/jpeg")  # idempotent
    assert blobs.exists(name)
    assert blobs.get(name) == data
    info = blobs.stat(name)
    assert (info.size, info.content_type) == (len(data), "image/jpeg")
    stream = blobs.open(name)
    chunks = list(stream)
    stream.close()
    assert b"".join(chunks) == data and stream.length == len(data)
    assert max(map(len, chunks)) <= CHUNK_BYTES
    for start, stop in [(0, 1), (5, 5000), (CHUNK_BYTES - 3, CHUNK_BYTES + 3), (len(data) - 7, len(data))]:
        part = blobs.open(name, start, stop)
        assert part.read_all() == data[start:stop] and part.length == stop - start
    assert name in set(blobs.digests())
    blobs.delete(name)
    assert not blobs.exists(name) and blobs.get(name) is None and blobs.open(name) is None
    blobs.delete(name)  # deleting what is not there is no error
    assert name not in set(blobs.digests())


def test_names_are_checked(blobs):
    for bad in ("../../etc/passwd", "AB" * 32, "ab" * 31, ""):
        with pytest.raises(ValueError):
            blobs.get(bad)
        with pytest.raises(ValueError):
            blobs.delete(bad)


def test_every_original_comes_back_byte_for_byte(api):
    client = api.test_client()
    originals = [noisy_jpeg(seed=2), jpeg(seed=3), png(), noisy_jpeg(300, 200, seed=4)]
    for position, data in enumerate(originals):
        response = client.post(f"/image/original-{position}.img", data=data)
        assert response.status_code == 200, response.get_json()
        digests = Digests.of(data)
        assert response.get_json()["hash"] in (digests.md5, digests.sha256)
        for image_id in (digests.sha256, digests.md5, digests.sha224):
            got = client.get(f"/api/images/{image_id}")
            assert got.status_code == 200
            assert got.data == data
            assert got.headers["ETag"] == f'"{digests.sha256}"'
            assert int(got.headers["Content-Length"]) == len(data)
            assert got.mimetype == ("image/png" if data.startswith(b"\x89PNG") else "image/jpeg")


def test_head_ranges_and_conditional_requests(api):
    client = api.test_client()
    data = noisy_jpeg(seed=5)
    name = sha(data)
    assert client.post("/image/ranged.jpg", data=data).status_code == 200
    url = f"/api/images/{name}"

    head = client.head(url)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(data)) and head.headers["Accept-Ranges"] == "bytes"

    for header, start, stop in [("bytes=0-99", 0, 100), ("bytes=1000-", 1000, len(data)),
                                ("bytes=-500", len(data) - 500, len(data)),
                                (f"bytes={CHUNK_BYTES - 1}-{CHUNK_BYTES + 1}", CHUNK_BYTES - 1, CHUNK_BYTES + 2)]:
        part = client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.data == data[start:stop], header
        assert part.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(data)}"
        assert part.headers["Content-Length"] == str(stop - start)

    beyond = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.is_json
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    # Several ranges, or an If-Range for other content: the whole image.
    assert client.get(url, headers={"Range": "bytes=0-1,5-6"}).data == data
    assert client.get(url, headers={"Range": "bytes=0-1", "If-Range": '"other"'}).data == data
    assert client.get(url, headers={"Range": "bytes=0-1", "If-Range": f'"{name}"'}).status_code == 206
    assert client.get(url, headers={"If-None-Match": f'"{name}"'}).status_code == 304


def test_a_known_image_without_its_original_is_a_clear_error(api, store_settings, caplog):
    client = api.test_client()
    data = jpeg(seed=6)
    name = sha(data)
    assert client.post("/image/lost.jpg", data=data).status_code == 200
    services = api.extensions["imagescan"]
    services.blobs.delete(name)

    gone = client.get(f"/api/images/{name}")
    assert gone.status_code == 404 and "missing from the blob store" in gone.get_json()["error"]
    assert "missing from the blob store" in caplog.text
    assert client.get(f"/{name}/png").status_code == 404

    worker = engine_free_worker(store_settings)
    try:
        document = wait_for_status(client, name, timeout=30)
    finally:
        worker.stop()
    assert document["status"] == "failed"
    assert "not in the blob store" in document["error"]


def test_copy_between_stores_resumes_without_copying_twice(request, settings, tmp_path, monkeypatch):
    redis_store = open_blob_store(settings.replace(blob_store="redis"))
    originals = [jpeg(seed=seed) for seed in range(10, 22)]
    for data in originals:
        redis_store.put(sha(data), data, "image/jpeg")

    dir_settings = settings.replace(blob_store="dir", blob_dir=str(tmp_path / "blobs"))
    directory = open_blob_store(dir_settings)
    writes = []

    class Interrupted(Exception):
        pass

    real_put = directory.put

    def put_then_fail(name, data, content_type):
        if len(writes) == 5:
            raise Interrupted
        writes.append(name)
        real_put(name, data, content_type)

    monkeypatch.setattr(directory, "put", put_then_fail)
    with pytest.raises(Interrupted):
        copy_blobs(redis_store, directory)
    monkeypatch.undo()
    report = copy_blobs(redis_store, directory)
    assert (report.copied, report.skipped) == (len(originals) - 5, 5)
    assert all(directory.get(sha(data)) == data for data in originals)
    assert copy_blobs(redis_store, directory).copied == 0

    # dir -> s3 through the command, configured from the environment like the services
    s3 = request.getfixturevalue("s3_server")
    for name, value in {"BLOB_DIR": dir_settings.blob_dir, "S3_BUCKET": s3.bucket, "S3_PREFIX": "copied/",
                        "S3_ENDPOINT_URL": s3.url, "S3_REGION": "us-east-1",
                        "REDIS_PORT": str(settings.redis_port)}.items():
        monkeypatch.setenv(name, value)
    assert copy_main(["--from", "dir", "--to", "s3"]) == 0
    assert copy_main(["--from", "dir", "--to", "s3"]) == 0
    bucket = open_blob_store(s3.settings(settings, prefix="copied/"))
    assert sorted(bucket.digests()) == sorted(sha(data) for data in originals)
    assert all(bucket.get(sha(data)) == data for data in originals)
    assert {bucket.stat(sha(data)).content_type for data in originals} == {"image/jpeg"}
