"""API documentation: the OpenAPI document and an interactive Swagger UI.

Swagger UI's files come from the `swagger-ui-bundle` package, so the page works without any
CDN or network access. The page and its initializer are ours (the package's initializer
points at the petstore example); everything else is served from the package as it is.
"""

from __future__ import annotations

import json
from functools import lru_cache

from flask import Blueprint, Response, jsonify, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

from .. import openapi

blueprint = Blueprint("docs", __name__)

INITIALIZER = "swagger-initializer.js"

_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>imagescan API</title>
    <link rel="stylesheet" type="text/css" href="{css}">
    <link rel="icon" type="image/png" href="{icon}" sizes="32x32">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="{bundle}" charset="UTF-8"></script>
    <script src="{preset}" charset="UTF-8"></script>
    <script src="{init}" charset="UTF-8"></script>
  </body>
</html>
"""

_INITIALIZER = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: %s,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  });
};
"""


@lru_cache(maxsize=1)
def _spec() -> dict:
    return openapi.build_spec()


@blueprint.get("/openapi.json")
def openapi_document():
    return jsonify(_spec())


@blueprint.get("/docs")
def docs_page():
    def asset(name: str) -> str:
        return url_for("docs.docs_asset", filename=name)

    page = _PAGE.format(
        css=asset("swagger-ui.css"), icon=asset("favicon-32x32.png"),
        bundle=asset("swagger-ui-bundle.js"), preset=asset("swagger-ui-standalone-preset.js"),
        init=asset(INITIALIZER),
    )
    return Response(page, mimetype="text/html")


@blueprint.get("/docs/<path:filename>")
def docs_asset(filename: str):
    if filename == INITIALIZER:
        script = _INITIALIZER % json.dumps(url_for("docs.openapi_document"))
        return Response(script, mimetype="text/javascript")
    # send_from_directory refuses paths that leave the directory (404).
    return send_from_directory(str(swagger_ui_path), filename, max_age=86400)

