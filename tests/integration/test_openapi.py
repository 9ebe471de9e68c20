"""The OpenAPI document matches the app's routes, and /docs works without a network."""

from __future__ import annotations

import re

import pytest

from rest import openapi

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _openapi_path(rule: str) -> str:
    """Flask's `/jobs/<job_id>` or `/image/<path:filename>` as OpenAPI's `/jobs/{job_id}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _app_routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        routes.setdefault(_openapi_path(rule.rule), set()).update(rule.methods - IGNORED_METHODS)
    return routes


@pytest.fixture
def spec(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_every_route_is_described_with_its_methods(app, spec):
    described = {path: {method.upper() for method in operations} for path, operations in spec["paths"].items()}

    for path, methods in _app_routes(app).items():
        assert path in described, f"{path} is not in the OpenAPI document"
        assert methods <= described[path], f"{path}: {methods - described[path]} not described"


def test_every_described_route_exists(app, spec):
    routes = _app_routes(app)

    for path, operations in spec["paths"].items():
        assert path in routes, f"{path} is described but the app has no such route"
        assert {m.upper() for m in operations} <= routes[path]


def test_the_seed_apis_are_all_there(spec):
    expected = {
        "/image/{filename}": {"put", "post"}, "/hash/{checksum}": {"get"}, "/license/{license}": {"get"},
        "/images/{digest}": {"get"}, "/scan/image/{filename}": {"post"}, "/scan/url": {"post"},
        "/match/{digest}": {"get"}, "/healthz": {"get"}, "/readyz": {"get"},
        "/jobs": {"post"}, "/jobs/{job_id}": {"get"}, "/jobs/{job_id}/output": {"get"},
        "/upload_file": {"post"}, "/{image_id}/jpeg": {"get"}, "/{image_id}/png": {"get"},
        "/{image_id}/grayscale": {"get"}, "/{image_id}/mirror": {"get"},
        "/api/generate-upload-link": {"post"}, "/api/upload-images/{upload_id}": {"post"},
        "/api/images/{image_id}": {"get"}, "/api/stats": {"get"},
    }
    for path, methods in expected.items():
        assert set(spec["paths"][path]) >= methods, path


def test_path_parameters_are_declared(spec):
    for path, operations in spec["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{method} {path}: declares {declared}, path has {names}"


def test_operations_have_unique_ids_and_resolvable_refs(spec):
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    schemas = spec["components"]["schemas"]
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', str(spec).replace("'", '"')):
        assert ref in schemas


def test_error_shape_and_api_key_scheme(spec):
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "status"]
    assert error["properties"]["status"]["type"] == "integer"
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "x-api-key"}
    for path in ("/api/generate-upload-link", "/api/upload-images/{upload_id}", "/api/stats"):
        (operation,) = spec["paths"][path].values()
        assert operation["security"] == [{"ApiKey": []}]
        assert {"401", "403"} <= set(operation["responses"])
    assert "security" not in spec["paths"]["/api/images/{image_id}"]["get"]


def test_spec_is_built_fresh_each_time():
    first = openapi.build_spec()
    first["paths"].clear()
    assert openapi.build_spec()["paths"]


def test_docs_page_uses_only_local_assets(client):
    page = client.get("/docs")

    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "//" not in html.replace("<!DOCTYPE", "")  # no absolute URL: nothing from a CDN
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.data) > 0


def test_docs_initializer_loads_our_document(client):
    script = client.get("/docs/swagger-initializer.js")

    assert script.status_code == 200
    assert '"/openapi.json"' in script.get_data(as_text=True)
    assert "petstore" not in script.get_data(as_text=True)


def test_swagger_ui_bundle_is_served(client):
    bundle = client.get("/docs/swagger-ui-bundle.js")

    assert bundle.status_code == 200
    assert b"SwaggerUIBundle" in bundle.data[:200_000] or b"swagger" in bundle.data[:200_000].lower()


def test_docs_files_outside_the_bundle_are_404(client):
    assert client.get("/docs/../openapi.py").status_code == 404
    assert client.get("/docs/no-such-file.js").status_code == 404
