"""The web console: a few static pages (plain JS modules and CSS, nothing built or fetched
from elsewhere) that use the public API from the browser.

Every page URL answers the same HTML document; the script in it draws the page the URL names,
so `/ui/images/<digest>` can be bookmarked and shared. Files live in `static/`, served at
`/ui/static/`.
"""

from __future__ import annotations

from flask import Response

from ..apidoc import Blueprint

blueprint = Blueprint("console", __name__, static_folder="static", static_url_path="/ui/static",
                      description="The web console's pages (its files: rest.openapi)")

PAGES = {"home": "/", "search": "/ui/search", "stats": "/ui/stats", "image": "/ui/images/<digest>"}
# Only this origin's own scripts, styles and images (blob: holds images fetched with a key):
# the console works offline and nothing injected into a name or plate can run.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                           "script-src 'self'; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


@blueprint.doc(responses={200: {"description": "The console's HTML page", "content": {"text/html": {}}}})
def page(digest: str | None = None) -> Response:
    """Web console: upload, recent images, search, statistics, one image

    The console's one HTML document, for every page URL.
    """
    response = blueprint.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


for _name, _path in PAGES.items():
    blueprint.add_url_rule(_path, endpoint=_name, view_func=page, methods=["GET"])
