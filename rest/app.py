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
from .ingest import ACCEPTED_IMAGES

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
    _observe_every_call(app)
    rest_metrics.instrument(app)
    install_access_control(app)  # after the request id is set, so refusals are logged with it
    return app


def _observe_every_call(app: Flask) -> None:
    """Every API call's request id, its one `info` message (details on `debug`) and its
    metrics, from one pair of hooks: Flask checks each hook for a coroutine on every call,
    and each use of `request` or `g` looks the request up again, so both are read once."""

    @app.before_request
    def _start():
        state = g._get_current_object()
        given = request.headers.get("X-Request-ID", "")
        state.request_id = given if _REQUEST_ID.match(given) else _new_request_id()
        state.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        called, state = request._get_current_object(), g._get_current_object()
        request_id = getattr(state, "request_id", "")
        seconds = time.perf_counter() - getattr(state, "started", time.perf_counter())
        status = response.status_code
        response.headers["X-Request-ID"] = request_id
        rest_metrics.observe(called, status, seconds, getattr(state, "upload_attempted", False))
        if log.isEnabledFor(logging.INFO):
            _log_call(called, response, request_id, seconds, getattr(state, ACCEPTED_IMAGES, ()))
        return response


def _log_call(called, response, request_id: str, seconds: float, accepted) -> None:
    """The call's one `info` line; with the image it accepted (its digests, name, size, whether
    new), or `images` when it accepted several."""
    status = response.status_code
    outcome = "ok" if status < 400 else "error"
    fields = {"request_id": request_id, "method": called.method, "path": called.path, "status": status,
              "outcome": outcome, "ms": round(seconds * 1000, 1)}
    if len(accepted) == 1:
        fields.update(accepted[0])
    elif accepted:
        fields["images"] = accepted
    if status >= 400 and response.is_json:
        fields["reason"] = (response.get_json(silent=True) or {}).get("error")
    log.info("%s %s -> %s %s", called.method, called.path, status, outcome, extra=fields)
    if log.isEnabledFor(logging.DEBUG):  # the details cost a user-agent parse: only when shown
        log.debug(
            "request details",
            extra={"request_id": request_id, "remote": called.remote_addr,
                   "content_type": called.content_type, "content_length": called.content_length,
                   "user_agent": called.user_agent.string},
        )
