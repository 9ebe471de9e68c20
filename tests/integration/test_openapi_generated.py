"""/openapi.json is generated from the routes' schemas: a valid OpenAPI 3.0 document, and the
schemas that describe a request are the ones that parse it (errors answered as ever)."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from rest import openapi

KEY = {"x-api-key": "test-key-1"}


def test_the_generated_description_is_valid_openapi(client):
    served = client.get("/openapi.json").get_json()

    validate(served)  # raises on any departure from the OpenAPI 3.0 schema
    assert served == openapi.build_spec()
    assert served["openapi"] == "3.0.3"


def test_a_declared_request_schema_is_described_where_it_parses(client):
    spec = client.get("/openapi.json").get_json()

    body = spec["paths"]["/api/generate-upload-link"]["post"]["requestBody"]
    expiry = spec["components"]["schemas"]["LinkRequest"]["properties"]["expiry"]
    assert body["required"] is False and "application/json" in body["content"]
    assert (expiry["minimum"], expiry["maximum"], expiry["default"]) == (1, 86400, 60)
    names = {p["name"]: p for p in spec["paths"]["/images/{digest}/names"]["get"]["parameters"]}
    assert names["limit"]["in"] == "query" and names["limit"]["schema"]["maximum"] == 1000
    fuzzy = {p["name"]: p for p in spec["paths"]["/license/{license}"]["get"]["parameters"]}["fuzzy"]
    assert fuzzy["schema"]["enum"] == [0, 1, 2]


@pytest.mark.parametrize("body, content_type, expiry", [
    (b'{"expiry": 300}', None, 300),  # no Content-Type: read as JSON all the same
    (b'{"expiry": " 120 "}', "text/plain", 120),
    (b"", "application/json", 60),
    (b'{"expiry": 90, "note": "ignored"}', "application/json", 90),
])
def test_upload_link_bodies_parse_as_they_always_did(client, body, content_type, expiry):
    response = client.post("/api/generate-upload-link", data=body, headers=KEY, content_type=content_type)

    assert response.status_code == 200 and response.get_json()["expiry"] == expiry


@pytest.mark.parametrize("path, words", [
    ("/images?limit=0", "limit must be a whole number from 1 to 100"),
    ("/images?limit=%2B5", "limit must be a whole number"),
    ("/license/ABC?fuzzy=maybe", "fuzzy must be 0, 1 or 2"),
    ("/images/" + "ab" * 32 + "/thumbnail?size=100", "size must be one of 128, 256, 512"),
])
def test_query_refusals_are_400_json_saying_why(client, path, words):
    response = client.get(path)

    assert response.status_code == 400 and response.is_json
    assert set(response.get_json()) == {"error", "status"} and response.get_json()["status"] == 400
    assert response.get_json()["error"].startswith(words)


def test_a_malformed_body_is_refused_before_anything_happens_but_after_the_key(client):
    assert client.post("/api/generate-upload-link", data=b"{").status_code == 403  # key first
    refused = client.post("/api/generate-upload-link", data=b"{", headers=KEY)
    assert refused.status_code == 400
    assert refused.get_json() == {"error": 'the body must be a JSON object like {"expiry": 60}', "status": 400}
    assert client.post("/scan/url", json={"url": "   "}).get_json()["error"] == (
        'send a JSON object with the image URL: {"url": "https://..."}')
