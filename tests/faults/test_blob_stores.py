"""Blob stores under failure: a full disk, a crash between write and rename, concurrent writers,
and the S3 server going away mid-test (uploads 503, nothing accepted lost, recovery on its own)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import pytest

from imagescan.blobs import BlobStoreUnavailable
from imagescan.blobs.directory import TEMP_PREFIX, DirectoryBlobStore
from tests.conftest import REPO_ROOT, engine_free_worker, wait_for_status
from tests.imagefactory import jpeg, noisy_jpeg

pytestmark = pytest.mark.faults


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_files(root) -> list:
    return [path for path in root.rglob(f"{TEMP_PREFIX}*")]


def make_app(settings):
    from rest.app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app


# -- dir ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(path, size: str = "1m"):
    """A real file system that fills up: tmpfs of `size` (needs root and mount rights)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_refuses_the_write_leaves_no_partial_file_and_uploads_get_503(settings, tmp_path):
    with tiny_tmpfs(tmp_path / "full") as root:
        store = DirectoryBlobStore(root)
        big = noisy_jpeg(seed=30)  # more than the 1 MiB the disk holds
        with pytest.raises(BlobStoreUnavailable) as refused:
            store.put(sha(big), big)
        assert refused.value.errno == errno.ENOSPC
        assert store.get(sha(big)) is None and temp_files(root) == []
        small = jpeg(seed=31)
        store.put(sha(small), small)
        assert store.get(sha(small)) == small

        client = make_app(settings.replace(blob_store="dir", blob_dir=str(root))).test_client()
        response = client.post("/image/big.jpg", data=big)
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert client.get(f"/images/{sha(big)}").status_code == 404, "nothing recorded for a refused upload"
        assert temp_files(root) == []
        assert client.post("/image/small.jpg", data=jpeg(seed=32)).status_code == 200


def test_a_write_error_removes_the_temporary_file(tmp_path, monkeypatch):
    store = DirectoryBlobStore(tmp_path)
    data = jpeg(seed=33)

    def failing_fsync(fd):
        raise OSError(errno.EIO, "injected I/O error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(BlobStoreUnavailable):
        store.put(sha(data), data)
    monkeypatch.undo()
    assert temp_files(tmp_path) == [] and store.get(sha(data)) is None
    store.put(sha(data), data)
    assert store.get(sha(data)) == data


CRASH_BEFORE_RENAME = """
import os, signal, sys
from imagescan.blobs.directory import DirectoryBlobStore
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # dies with the data written
data = sys.stdin.buffer.read()
DirectoryBlobStore(sys.argv[1]).put(sys.argv[2], data)
"""


def test_a_crash_between_write_and_rename_never_serves_half_a_file(settings, tmp_path):
    root = tmp_path / "blobs"
    data = noisy_jpeg(seed=34)
    crashed = subprocess.run([sys.executable, "-c", CRASH_BEFORE_RENAME, str(root), sha(data)],
                             input=data, cwd=REPO_ROOT, capture_output=True, check=False)
    assert crashed.returncode == -9, crashed.stderr.decode()
    assert len(temp_files(root)) == 1, "the crash left its temporary file"
    store = DirectoryBlobStore(root)
    assert store.get(sha(data)) is None and store.stat(sha(data)) is None and not store.exists(sha(data))
    assert list(store.digests()) == []

    client = make_app(settings.replace(blob_store="dir", blob_dir=str(root))).test_client()
    assert client.get(f"/api/images/{sha(data)}").status_code == 404
    assert client.post("/image/again.jpg", data=data).status_code == 200
    assert client.get(f"/api/images/{sha(data)}").data == data


def _write(root: str, data: bytes) -> None:
    DirectoryBlobStore(root).put(hashlib.sha256(data).hexdigest(), data)


def test_concurrent_writers_of_one_digest_and_a_reader_see_whole_files_only(tmp_path):
    root = tmp_path / "blobs"
    store = DirectoryBlobStore(root)
    data = noisy_jpeg(seed=35)
    name = sha(data)
    seen, stop = [], threading.Event()

    def read_all_the_time():
        while not stop.is_set():
            got = store.get(name)
            seen.append(None if got is None else got == data)

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write, args=(str(root), data)) for _ in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    time.sleep(0.05)
    stop.set()
    reader.join()
    assert all(writer.exitcode == 0 for writer in writers)
    assert False not in seen, "a reader saw a partial or different file"
    assert seen[-1] is True
    assert store.get(name) == data and temp_files(root) == []
    assert list(store.digests()) == [name]


# -- s3 ----------------------------------------------------------------------------------------


def test_s3_going_away_gives_503s_loses_nothing_and_recovers_without_a_restart(settings, s3_server):
    s3_settings = s3_server.settings(settings)
    client = make_app(s3_settings).test_client()
    accepted = {}
    for seed in range(3):
        data = jpeg(seed=40 + seed)
        assert client.post(f"/image/before-{seed}.jpg", data=data).status_code == 200
        accepted[sha(data)] = data

    s3_server.stop()
    try:
        refused = [jpeg(seed=50 + seed) for seed in range(3)]
        for data in refused:
            response = client.post("/image/during.jpg", data=data)
            assert response.status_code == 503, response.get_json()
            assert response.headers["Retry-After"]
            assert client.get(f"/images/{sha(data)}").status_code == 404
        response = client.get(f"/api/images/{next(iter(accepted))}")
        assert response.status_code == 503 and response.headers["Retry-After"]
    finally:
        s3_server.start()

    for data in refused:  # the client retries, as Retry-After said
        assert client.post("/image/after.jpg", data=data).status_code == 200
        accepted[sha(data)] = data
    for name, data in accepted.items():
        assert client.get(f"/api/images/{name}").data == data


def test_worker_waits_for_s3_without_using_up_an_attempt(settings, s3_server):
    # One attempt only: had the outage cost an attempt, the image would end up failed.
    s3_settings = s3_server.settings(settings).replace(max_attempts=1)
    client = make_app(s3_settings).test_client()
    data = jpeg(seed=60)
    assert client.post("/image/queued.jpg", data=data).status_code == 200

    s3_server.stop()
    worker = engine_free_worker(s3_settings)
    try:
        try:
            deadline = time.monotonic() + 30
            while client.get(f"/images/{sha(data)}").get_json()["status"] != "processing":
                assert time.monotonic() < deadline, "the worker never took the message"
                time.sleep(0.1)
            time.sleep(3)  # the worker is waiting for the store now
            assert client.get(f"/images/{sha(data)}").get_json()["status"] == "processing"
        finally:
            s3_server.start()
        document = wait_for_status(client, sha(data), timeout=60)
    finally:
        worker.stop()
    assert document["status"] == "done", document
    assert "error" not in document
