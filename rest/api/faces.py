"""The faces API (seeds/2-faces-api.md): scan by bytes or URL, match faces across images."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..ingest import accept_image

blueprint = Blueprint("faces", __name__)


@blueprint.post("/scan/image/<path:filename>")
def scan_image(filename: str):
    digests = accept_image(request.get_data(cache=False), filename)
    return jsonify({"hash": digests.sha224})
