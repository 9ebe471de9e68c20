"""The service's health: liveness (`/healthz`) and readiness (`/readyz`) for probes."""

from __future__ import annotations

import marshmallow as ma
from flask import jsonify

from ..apidoc import Blueprint
from ..errors import RETRY_AFTER_SECONDS
from ..schemas import Document
from ..services import current

blueprint = Blueprint("health", __name__, description="Probes and metrics for operations")


class Alive(Document):
    status = ma.fields.String(required=True, validate=ma.validate.Equal("ok"))


class Readiness(Document):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(["ready", "degraded", "unavailable"]))
    checks = ma.fields.Dict(required=True, metadata={"description": "redis: ok|down; rabbitmq: ok|down|busy"})


@blueprint.get("/healthz")
@blueprint.response(200, Alive, description="Alive")
def healthz():
    """Liveness: the process answers

    No dependency is checked (that is /readyz).
    """
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
@blueprint.response(200, Readiness, description="Ready (status `degraded` while RabbitMQ is away)")
@blueprint.alt_response(503, schema=Readiness, description="Redis is unreachable")
def readyz():
    """Readiness: Redis reachable

    Ready while Redis answers: every read needs only Redis, and uploads answer their
    documented 503 JSON by themselves when the broker is away. Taking the pod out of its
    Service because RabbitMQ is down would turn those answers into load-balancer errors.
    The broker's state is reported (`busy`: uploads are waiting for their confirms right now)."""
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
