"""API documentation: the OpenAPI document and an interactive Swagger UI.

Swagger UI's files come from the `swagger-ui-bundle` package, so the page works without any
CDN or network access. The page and its initializer are ours (the package's initializer
points at the petstore example); everything else is served from the package as it is.
"""

from __future__ import annotations

import json

from flask import Response, current_app, jsonify, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

from .. import openapi
from ..apidoc import Blueprint, error

blueprint = Blueprint("docs", __name__, description="This description, and Swagger UI to try it")

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


@blueprint.get("/openapi.json")
@blueprint.response(200, {"type": "object"}, description="OpenAPI 3.0 document")
def openapi_document():
    """This document"""
    return jsonify(openapi.document(current_app))


@blueprint.get("/docs")
@blueprint.response(200, {"type": "string"}, content_type="text/html", description="HTML page")
def docs_page():
    """Interactive documentation (Swagger UI)"""
    def asset(name: str) -> str:
        return url_for("docs.docs_asset", filename=name)

    page = _PAGE.format(
        css=asset("swagger-ui.css"), icon=asset("favicon-32x32.png"),
        bundle=asset("swagger-ui-bundle.js"), preset=asset("swagger-ui-standalone-preset.js"),
        init=asset(INITIALIZER),
    )
    return Response(page, mimetype="text/html")


@blueprint.get("/docs/<path:filename>")
@blueprint.response(200, {"type": "string", "format": "binary"}, content_type="*/*",
                    description="The file (script, style sheet, image)")
@blueprint.doc(responses={404: error("No such file")})
def docs_asset(filename: str):
    """Swagger UI's static files"""
    if filename == INITIALIZER:
        script = _INITIALIZER % json.dumps(url_for("docs.openapi_document"))
        return Response(script, mimetype="text/javascript")
    # send_from_directory refuses paths that leave the directory (404).
    return send_from_directory(str(swagger_ui_path), filename, max_age=86400)

