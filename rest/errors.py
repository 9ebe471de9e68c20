"""Errors rendered in one place: every error leaves the service as a JSON document."""

from __future__ import annotations

import logging

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from imagescan.blobs import BlobStoreUnavailable
from imagescan.broker import BrokerUnavailable

from .metrics import count_dependency_error

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success: status, a sentence saying why, optional headers and fields."""

    def __init__(self, status: int, message: str, *, headers: dict | None = None, **fields):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.fields = fields


RETRY_AFTER_SECONDS = "5"


def unavailable(what: str) -> ApiError:
    """503 with Retry-After: a backing service (Redis, RabbitMQ) is away for now."""
    return ApiError(503, f"{what} is unavailable; retry shortly", headers={"Retry-After": RETRY_AFTER_SECONDS})


def missing_original(sha256: str) -> ApiError:
    """A known image whose bytes the blob store does not have (lost, or not copied over yet)."""
    log.error("the original of %s is missing from the blob store", sha256, extra={"sha256": sha256})
    return ApiError(404, f"image {sha256} is known but its original is missing from the blob store",
                    sha256=sha256)


def error_response(status: int, message: str, headers: dict | None = None, **fields):
    response = jsonify({"error": message, "status": status, **fields})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def render_http_exception(error: HTTPException):
    """werkzeug's refusals (404 route, 405, 413 body too large...) as JSON like every other error."""
    headers = dict(error.get_headers())
    headers.pop("Content-Type", None)
    return error_response(error.code or 500, error.description or error.name, headers)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        if error.status == 503:
            count_dependency_error(error)
        return error_response(error.status, error.message, error.headers, **error.fields)

    app.register_error_handler(HTTPException, render_http_exception)

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(BrokerUnavailable)
    @app.errorhandler(BlobStoreUnavailable)
    def _dependency_down(error: Exception):
        # Redis, RabbitMQ or the blob store away (restarting, unreachable, full): a retryable 503 on any route,
        # not a 500; routes need not each catch it.
        log.warning("dependency unavailable: %r", error)
        count_dependency_error(error)
        return _api_error(unavailable("a backing service"))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        # Never a stack trace or an HTML page to the client; the details go to the log.
        log.exception("unhandled error")
        return error_response(500, "internal error; the request id in the log tells what happened")
