"""Every status a route answers with, found by calling its error paths, is in /openapi.json."""

from __future__ import annotations

import dataclasses
import io
import time

import pytest
from flask import request

from tests.conftest import engine_free_worker
from tests.faults.servers import free_port
from tests.imagefactory import jpeg, noisy_jpeg

UNKNOWN = "ab" * 32
KEY = {"x-api-key": "test-key-1"}
WRONG_KEY = {"x-api-key": "wrong"}


@pytest.fixture
def answered(app):
    """(route, method, status) of every answer the app gives during the test."""
    seen: set[tuple[str, str, int]] = set()

    @app.after_request
    def _record(response):
        if request.url_rule is not None:
            seen.add((request.url_rule.rule, request.method, response.status_code))
        return response

    return seen


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_status_the_error_paths_answer_is_described(app, client, answered):
    calls = [
        ("get", f"/images/{UNKNOWN}", {}), ("get", f"/images/{UNKNOWN}/names", {}),
        ("get", "/images?limit=0", {}), ("get", f"/images/{UNKNOWN}/thumbnail?size=7", {}),
        ("get", f"/images/{UNKNOWN}/thumbnail", {}),
        ("get", "/license/ABC?fuzzy=9", {}), ("get", "/license/ABC", {}), ("get", "/hash/abc", {}),
        ("put", "/image/empty.jpg", {"data": b""}), ("post", "/image/text.jpg", {"data": b"not an image"}),
        ("put", "/image/good.jpg", {"data": jpeg(40, 30)}),
        ("post", "/scan/url", {"data": b"no json"}), ("post", "/scan/url", {"json": {"url": "http://10.0.0.1/a.jpg"}}),
        ("post", "/scan/url", {"json": {"url": "ftp://example.com/a.jpg"}}),
        ("post", "/scan/image/empty.jpg", {"data": b""}), ("get", f"/match/{UNKNOWN}", {}),
        ("post", "/jobs", {"data": {}}), ("get", "/jobs/nope", {}), ("get", "/jobs/nope/output", {}),
        ("post", "/upload_file", {"data": {}}), ("get", f"/{UNKNOWN}/jpeg", {}), ("get", f"/{UNKNOWN}/mirror", {}),
        ("post", "/api/generate-upload-link", {}), ("post", "/api/generate-upload-link", {"headers": WRONG_KEY}),
        ("post", "/api/generate-upload-link", {"headers": KEY, "json": {"expiry": 0}}),
        ("post", "/api/generate-upload-link", {"headers": KEY, "data": b"{"}),
        ("post", "/api/upload-images/nope", {"headers": KEY}), ("post", "/api/upload-images/nope", {}),
        ("get", "/api/images/nope", {}), ("get", "/api/stats", {}), ("get", "/api/stats", {"headers": WRONG_KEY}),
        ("delete", f"/images/{UNKNOWN}", {}), ("delete", f"/images/{UNKNOWN}", {"headers": KEY}),
        ("get", "/docs/no-such-file.js", {}), ("get", "/healthz", {}), ("get", "/readyz", {}),
    ]
    for method, path, options in calls:
        getattr(client, method)(path, **options)
    spec = client.get("/openapi.json").get_json()

    missing = []
    for rule, method, status in sorted(answered):
        path = _openapi_path(rule)
        operation = spec["paths"].get(path, {}).get(method.lower())
        if operation is None:
            if path not in ("/openapi.json", "/docs/{filename}", "/docs"):
                missing.append(f"{method} {path}: not described")
            continue
        if str(status) not in operation["responses"]:
            missing.append(f"{method} {path}: {status}")
    assert not missing, missing
    assert len({rule for rule, _, _ in answered}) >= 20, "the calls above reach most routes"


# -- the success paths and the rarer errors, and every JSON body against its described schema --

@pytest.fixture
def answers(app):
    """(rule, method, status, mimetype, JSON body or None) of every answer during the test."""
    seen: list[tuple] = []

    @app.after_request
    def _record(response):
        if request.url_rule is not None:
            body = response.get_json(silent=True) if response.is_json else None
            seen.append((request.url_rule.rule, request.method, response.status_code, response.mimetype, body))
        return response

    return seen


def _disagreements(spec: dict, answers: list[tuple]) -> list[str]:
    """Answers whose status or content type the description lacks, or whose JSON body does not
    match the schema described for it."""
    from openapi_schema_validator import OAS30Validator

    found = []
    for rule, method, status, mimetype, body in answers:
        path = _openapi_path(rule)
        operation = spec["paths"].get(path, {}).get("get" if method == "HEAD" else method.lower())
        if operation is None:
            found.append(f"{method} {path}: not described")
            continue
        described = operation["responses"].get(str(status))
        if described is None:
            found.append(f"{method} {path}: {status}")
            continue
        described = spec["components"]["responses"][described["$ref"].rsplit("/", 1)[1]] \
            if "$ref" in described else described
        if method == "HEAD" or status == 304:
            continue
        content = described.get("content", {})
        mimetype = mimetype if mimetype in content or "*/*" not in content else "*/*"  # any type
        if mimetype not in content:
            found.append(f"{method} {path} {status}: {mimetype} not described ({sorted(content)})")
        elif body is not None and "schema" in content[mimetype]:
            schema = {"allOf": [content[mimetype]["schema"]], "components": spec["components"]}
            problems = [error.message for error in OAS30Validator(schema).iter_errors(body)]
            if problems:
                found.append(f"{method} {path} {status}: {problems[:3]}")
    return found


def _upload(client, data: bytes, name: str = "photo.jpg") -> str:
    response = client.post("/upload_file", data={"image": (io.BytesIO(data), name)})
    assert response.status_code == 200, response.get_json()
    return response.get_data(as_text=True)


def _wait(condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (result := condition()) is not None:
            return result
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_success_paths_and_rarer_errors_answer_as_described(app, client, settings, answers):
    image = jpeg(64, 48, seed=7)
    sha256 = _upload(client, image)
    md5 = client.put("/image/photo.jpg", data=image).get_json()["hash"]
    client.post("/scan/image/photo.jpg", data=image)
    client.put("/image/big.jpg", data=b"\xff" * (settings.max_upload_bytes + 1))  # 413
    client.put("/image/text.jpg", data=b"just some text")  # 415
    # originals: whole, a range, a range past the end, not modified, headers only
    original = f"/api/images/{sha256}"
    for headers in ({}, {"Range": "bytes=0-9"}, {"Range": "bytes=999999-"}, {"If-None-Match": f'"{sha256}"'}):
        client.get(original, headers=headers)
    client.head(original)
    # the reads of a known image
    for path in (f"/images/{md5}", f"/images/{md5}/names", "/images", f"/hash/{md5}", "/license/ABC?fuzzy=2",
                 f"/match/{md5}", f"/{md5}/png", f"/images/{md5}/thumbnail?size=128"):
        client.get(path)
    etag = client.get(f"/images/{md5}/thumbnail?size=128").headers["ETag"]
    client.get(f"/images/{md5}/thumbnail?size=128", headers={"If-None-Match": etag})
    # the image service with a key
    link = client.post("/api/generate-upload-link", headers=KEY, json={"expiry": 60}).get_json()["upload_id"]
    client.post(f"/api/upload-images/{link}", headers=KEY, data={"image_files": [(io.BytesIO(image), "a.jpg")]})
    client.post(f"/api/upload-images/{link}", headers=KEY, data={"other": "x"})
    client.get("/api/stats", headers=KEY), client.get("/api/stats/counts", headers=KEY)
    # a job refused at upload (its status, its output: 409); one queued, then rendered
    refused = client.post("/jobs", data={"image": (io.BytesIO(image[:-400]), "cut.jpg")})
    client.get(refused.headers["Location"]), client.get(refused.headers["Location"] + "/output")
    queued = client.post("/jobs", data={"image": (io.BytesIO(jpeg(64, 48, seed=8)), "job.jpg")})
    client.get(queued.headers["Location"] + "/output")
    worker = engine_free_worker(settings)
    try:
        _wait(lambda: client.get(queued.headers["Location"]).status_code == 201 or None)
    finally:
        worker.stop()
    client.get(queued.headers["Location"] + "/output")
    # stored originals that no longer decode (a cut header: 400; cut pixels: 422)
    photo = noisy_jpeg(320, 240)
    for stored, cut in ((sha256, image[:-400]), (_upload(client, photo), photo[:len(photo) // 2])):
        app.extensions["imagescan"].blobs.delete(stored)
        app.extensions["imagescan"].blobs.put(stored, cut, "image/jpeg")
        client.get(f"/{stored}/mirror"), client.get(f"/images/{stored}/thumbnail?size=512")
    # too many wrong keys: 429 even with the right one; then erase, twice
    for _ in range(20):
        client.get("/api/stats/counts", headers=WRONG_KEY)
    client.get("/api/stats", headers=KEY)
    app.extensions["imagescan"].redis.flushdb()  # forget the wrong keys, and every image
    sha256 = _upload(client, image)
    client.delete(f"/images/{sha256}", headers=KEY), client.delete(f"/images/{sha256}", headers=KEY)
    for path in ("/openapi.json", "/docs", "/docs/swagger-ui.css", "/", "/ui/stats", "/ui/static/console.css", "/metrics"):
        client.get(path)

    statuses = {status for _, _, status, _, _ in answers}
    assert {200, 201, 202, 206, 304, 400, 401, 409, 413, 415, 416, 422, 429} <= statuses, statuses
    assert not _disagreements(client.get("/openapi.json").get_json(), answers)


def test_routes_answer_503_as_described_while_storage_is_down(settings, tmp_path):
    from rest.app import create_app

    app = create_app(dataclasses.replace(settings, redis_port=free_port()))  # nothing listens there
    seen: list[tuple] = []
    app.after_request(lambda response: seen.append((request.url_rule.rule, request.method, response.status_code,
                                                    response.mimetype, response.get_json(silent=True)))
                      or response)
    client = app.test_client()
    try:
        calls = [("get", f"/images/{UNKNOWN}"), ("get", f"/images/{UNKNOWN}/names"), ("get", "/images"),
                 ("get", f"/images/{UNKNOWN}/thumbnail"), ("get", "/hash/abc"), ("get", "/license/ABC"),
                 ("get", f"/match/{UNKNOWN}"), ("get", "/jobs/6f1c5e2a-0000-4000-8000-000000000000"),
                 ("get", "/jobs/6f1c5e2a-0000-4000-8000-000000000000/output"), ("get", f"/{UNKNOWN}/png"),
                 ("get", f"/api/images/{UNKNOWN}"), ("put", "/image/a.jpg"), ("post", "/scan/image/a.jpg"),
                 ("post", "/scan/url"), ("post", "/api/generate-upload-link"), ("get", "/api/stats"),
                 ("get", "/api/stats/counts"), ("delete", f"/images/{UNKNOWN}"), ("get", "/readyz")]
        for method, path in calls:
            options = {"data": jpeg(32, 24)} if method in ("put", "post") else {}
            if path == "/scan/url":
                options = {"json": {"url": "http://example.com/a.jpg"}}
            getattr(client, method)(path, headers=KEY, **options)
        spec = client.get("/openapi.json").get_json()
    finally:
        app.extensions["imagescan"].publisher.close()

    assert {status for _, _, status, _, _ in seen if status != 200} == {503}, seen
    assert not _disagreements(spec, [answer for answer in seen if answer[0] != "/openapi.json"])


def test_the_check_finds_what_the_description_lacks(client):
    spec = client.get("/openapi.json").get_json()
    wrong = [("/images/<digest>", "GET", 418, "application/json", None),  # status not described
             ("/hash/<checksum>", "GET", 200, "text/html", None),  # content type not described
             ("/images/<digest>/names", "GET", 200, "application/json", {"names": "a", "total": "1"}),
             ("/api/stats", "GET", 200, "application/json", {"extra": 1}),  # exactly three keys
             ("/nowhere", "GET", 200, "application/json", None)]

    found = _disagreements(spec, wrong)

    assert len(found) == len(wrong), found
    assert _disagreements(spec, [("/images/<digest>/names", "GET", 200, "application/json",
                                  {"names": ["a"], "total": 1, "offset": 0, "next": None})]) == []
