"""The OpenAPI 3.0 description (served at /openapi.json), generated from the routes.

flask-smorest collects what each route declares (rest.apidoc) into an apispec document. Two
routes are not ours to decorate and are described here: Flask's static files of the console
and /metrics (prometheus' own view).
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from flask_smorest.spec.plugins import FlaskPlugin

from imagescan import __version__

from .errors import render_http_exception
from .schemas import Error

DESCRIPTION = (
    "Licence plates, faces and EXIF of uploaded images, plus the jobs, prog-image and image-service "
    "APIs. Every route taking an image digest accepts its MD5, SHA-224 or SHA-256. Every error is "
    '`{"error": str, "status": int}`. With AUTH=keys every route but /healthz, /readyz and /metrics '
    "needs an `x-api-key` with the route's scope (upload, read, faces or admin)."
)
EXTENSION = "imagescan.openapi"


def operation_id(method: str, path: str) -> str:
    """`get_images_digest` for GET /images/{digest}: unique, readable, stable across releases."""
    words = [w.strip("{}").replace("-", "_").replace(".", "_") for w in path.split("/") if w]
    return "_".join([method, *words])


class RoutePlugin(FlaskPlugin):
    """flask-smorest's Flask plugin, with the path parameters on each operation (where
    client generators and Swagger UI's "try it" look first) and an operationId for each."""

    def path_helper(self, rule=None, operations=None, parameters=None, **kwargs):
        if rule is None:  # a path described by hand, already complete
            return None
        path = super().path_helper(rule, operations, parameters, **kwargs)
        for method, operation in operations.items():
            if parameters or operation.get("parameters"):
                operation["parameters"] = [*parameters, *operation.get("parameters", [])]
            operation["operationId"] = operation_id(method, path)
        parameters.clear()
        return path


class DescribedApi(Api):
    ERROR_SCHEMA = Error
    DEFAULT_ERROR_RESPONSE_NAME = None  # each route lists the errors it can answer

    def handle_http_exception(self, error):
        return render_http_exception(error)  # the app's one renderer, whichever was registered last


def _spec_options() -> dict:
    return {"title": "imagescan", "version": __version__, "openapi_version": "3.0.3",
            "flask_plugin": RoutePlugin(), "info": {"description": DESCRIPTION}}


def register(app: Flask, blueprints) -> DescribedApi:
    """Register the blueprints on the app, each route with its description."""
    api = DescribedApi(app, spec_kwargs=_spec_options())
    api.spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "x-api-key"})
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    for path, operations in _undecorated_routes().items():
        api.spec.path(path=path, operations=operations)
    app.extensions[EXTENSION] = api
    return api


def _undecorated_routes() -> dict:
    text = {"schema": {"type": "string"}}
    static = {"in": "path", "name": "filename", "required": True, "schema": {"type": "string"},
              "description": "A file of the console"}
    return {
        "/ui/static/{filename}": {"get": {
            "tags": ["console"], "summary": "The console's scripts, styles and icons",
            "operationId": operation_id("get", "/ui/static/{filename}"), "parameters": [static],
            "responses": {"200": {"description": "The file (script, style sheet, image)",
                                  "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
                          "404": {"description": "No such file", "content": {"application/json": {
                              "schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/metrics": {"get": {
            "tags": ["health"], "summary": "Prometheus metrics (text exposition format)",
            "operationId": operation_id("get", "/metrics"),
            "responses": {"200": {"description": "Metrics", "content": {"text/plain": text}}}}},
    }


def document(app: Flask) -> dict:
    """The app's description, built once per app (it changes only with the code)."""
    cached = app.extensions.get(EXTENSION + ".document")
    if cached is None:
        cached = app.extensions[EXTENSION + ".document"] = app.extensions[EXTENSION].spec.to_dict()
    return cached


def build_spec() -> dict:
    """A fresh description of every route, without a running service (for tools and tests)."""
    from . import console
    from .api import BLUEPRINTS

    app = Flask(__name__)
    return register(app, (*BLUEPRINTS, console.blueprint)).spec.to_dict()
