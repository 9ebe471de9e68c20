"""The service's health: liveness (`/healthz`) and readiness (`/readyz`) for probes."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..errors import RETRY_AFTER_SECONDS
from ..services import current

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """The process is alive and answering: no dependency is checked (that is /readyz)."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz():
    """Ready while Redis answers: every read needs only Redis, and uploads answer their
    documented 503 JSON by themselves when the broker is away. Taking the pod out of its
    Service because RabbitMQ is down would turn those answers into load-balancer errors.
    The broker's state is reported (`busy`: an upload is using the connection right now)."""
    services = current()
    redis_ok = services.store.ping()
    broker = services.publisher.ping()
    body = {"status": ("ready" if broker else "degraded") if redis_ok else "unavailable",
            "checks": {"redis": "ok" if redis_ok else "down",
                       "rabbitmq": {True: "ok", False: "down", None: "busy"}[broker]}}
    response = jsonify(body)
    if not redis_ok:
        response.status_code = 503
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response
