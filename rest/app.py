"""The Flask app factory."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from imagescan.config import Settings

from . import console, openapi
from . import metrics as rest_metrics
from . import services as services_module
from .api import BLUEPRINTS
from .auth import install_access_control
from .errors import register_error_handlers

log = logging.getLogger("imagescan.rest")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ids = {"pid": None, "prefix": "", "counter": itertools.count()}


def _new_request_id() -> str:
    """Unique without a system call per request (uuid4 reads the kernel's random source
    each time): a random prefix per process, then a counter."""
    if _ids["pid"] != os.getpid():  # first call, or a forked copy of this module
        _ids.update(pid=os.getpid(), prefix=os.urandom(8).hex(), counter=itertools.count())
    return f"{_ids['prefix']}{next(_ids['counter']):08x}"


def create_app(settings: Settings | None = None, services: services_module.Services | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_upload_bytes
    app.json.sort_keys = False
    if settings.proxy_hops:
        # Behind an ingress or load balancer the peer is the proxy: the client address (used by
        # the API-key rate limit and the logs) comes from that many X-Forwarded-For hops.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)
    app.extensions[services_module.EXTENSION] = services or services_module.Services.build(settings)
    openapi.register(app, (*BLUEPRINTS, console.blueprint))  # each route with its description
    register_error_handlers(app)
    _log_every_call(app)
    rest_metrics.instrument(app)
    install_access_control(app)  # after the request id is set, so refusals are logged with it
    return app


def _log_every_call(app: Flask) -> None:
    """One `info` message per API call with its outcome; details on `debug`."""

    @app.before_request
    def _start():
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else _new_request_id()
        g.started = time.monotonic()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        outcome = "ok" if response.status_code < 400 else "error"
        fields = {
            "request_id": g.get("request_id"),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "outcome": outcome,
            "ms": round((time.monotonic() - g.get("started", time.monotonic())) * 1000, 1),
        }
        if response.is_json and response.status_code >= 400:
            fields["reason"] = (response.get_json(silent=True) or {}).get("error")
        log.info("%s %s -> %s %s", request.method, request.path, response.status_code, outcome, extra=fields)
        if log.isEnabledFor(logging.DEBUG):  # the details cost a user-agent parse: only when shown
            log.debug(
                "request details",
                extra={"request_id": fields["request_id"], "remote": request.remote_addr,
                       "content_type": request.content_type, "content_length": request.content_length,
                       "user_agent": request.user_agent.string},
            )
        return response
