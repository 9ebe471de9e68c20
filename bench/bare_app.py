"""The reference for the REST figures: a bare Flask app doing the least an upload needs
(read the body, hash it, answer JSON), served by the same gunicorn settings as the REST."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from flask import Flask, jsonify, request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imagescan.config import Settings
from rest.__main__ import RestServer


def create_bare_app() -> Flask:
    app = Flask(__name__)

    @app.put("/image/<path:filename>")
    def upload(filename: str):
        return jsonify({"hash": hashlib.md5(request.get_data(cache=False)).hexdigest()})

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    return app


class BareServer(RestServer):
    def load(self):
        return create_bare_app()


if __name__ == "__main__":
    BareServer(Settings.from_env()).run()
