"""Every status a route answers with, found by calling its error paths, is in /openapi.json."""

from __future__ import annotations

import pytest
from flask import request

from tests.imagefactory import jpeg

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
