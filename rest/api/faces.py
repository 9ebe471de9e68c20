"""The faces API (seeds/2-faces-api.md): scan by bytes or URL, match faces across images.

`/scan/*` answer the SHA-224 their clients expect. Every image, whatever route brought
it, gets the same analysis (plates and geotag too).
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

import marshmallow as ma
import redis
from flask import current_app, jsonify, request

from imagescan import faceindex
from imagescan.urlfetch import FetchRefused, fetch_image

from ..apidoc import BAD_IMAGE, DIGEST, RAW_UPLOAD, STORAGE_DOWN, Blueprint, error, path_parameter
from ..errors import RETRY_AFTER_SECONDS, ApiError, unavailable
from ..ingest import accept_image, check_name
from ..schemas import Hash
from ..services import current

blueprint = Blueprint("faces", __name__, description="Faces: scan by bytes or URL, match across images")
log = logging.getLogger("imagescan.rest.faces")
URL_FETCH_SLOTS = "imagescan.url_fetch_slots"


@blueprint.post("/scan/image/<path:filename>", parameters=[path_parameter("filename", "Name recorded for the image")])
@blueprint.response(200, Hash, description="Accepted; `hash` is the SHA-224")
@blueprint.doc(**RAW_UPLOAD)
def scan_image(filename: str):
    """Scan an image for faces"""
    digests = accept_image(request.get_data(cache=False), filename)
    return jsonify({"hash": digests.sha224})


_SEND_URL = 'send a JSON object with the image URL: {"url": "https://..."}'


def _not_blank(url: str) -> None:
    if not url.strip():
        raise ma.ValidationError(_SEND_URL)


class ImageUrl(ma.Schema):
    error_messages: ClassVar = {"type": _SEND_URL}

    url = ma.fields.String(required=True, validate=_not_blank, metadata={"format": "uri"},
                           error_messages={key: _SEND_URL.replace("{", "{{").replace("}", "}}")  # str.format
                                           for key in ("required", "null", "invalid")})


def _url_fetch_slots(limit: int) -> threading.BoundedSemaphore:
    """One per app: each fetch holds a request thread for up to 3 x URL_FETCH_TIMEOUT, so
    slow URLs must not take every thread the REST has."""
    return current_app.extensions.setdefault(URL_FETCH_SLOTS, threading.BoundedSemaphore(limit))


@blueprint.post("/scan/url")
@blueprint.response(200, Hash, description="Accepted (or seen before); `hash` is the SHA-224")
@blueprint.doc(responses={
    **BAD_IMAGE,
    403: error("The URL points at a private, loopback or metadata address"),
    502: error("The URL could not be fetched (upstream error, TLS failure)"),
    504: error("Fetching the URL timed out"),
    503: error("Redis or RabbitMQ unavailable, or URL_FETCH_CONCURRENCY fetches already in progress; "
               "nothing was queued", retry_after=True),
})
@blueprint.arguments(ImageUrl)
def scan_url(body: dict):
    """Fetch an image by URL and scan it (once per URL)"""
    url = check_name(body["url"].strip())
    services = current()
    try:
        known = services.store.image_for_url(url)
        digests = services.store.digests(known) if known else None
    except redis.RedisError as exc:
        raise unavailable("storage") from exc
    if digests is not None:
        # URLs are taken as unique (seeds/2-faces-api.md): a scanned URL is not fetched again.
        return jsonify({"hash": digests.sha224})
    settings = services.settings
    slots = _url_fetch_slots(settings.url_fetch_concurrency)
    if not slots.acquire(blocking=False):
        raise ApiError(503, f"{settings.url_fetch_concurrency} URL fetches are in progress; retry shortly",
                       headers={"Retry-After": RETRY_AFTER_SECONDS}, url=url)
    try:
        fetched = fetch_image(url, allow_private=settings.allow_private_urls,
                              max_bytes=settings.max_upload_bytes, timeout=settings.url_fetch_timeout)
    except FetchRefused as refused:
        raise ApiError(refused.status, refused.reason, url=url) from None
    finally:
        slots.release()
    digests = accept_image(fetched.data, url)
    try:
        services.store.remember_url(url, digests.sha256)
    except redis.RedisError:
        log.warning("could not remember %s; a later scan will fetch it again", url)
    return jsonify({"hash": digests.sha224})


@blueprint.get("/match/<digest>", parameters=[path_parameter("digest", DIGEST)])
@blueprint.response(200, {"type": "array", "items": {"type": "string"}},
                    description="[] for unknown images and images without faces")
@blueprint.doc(responses=STORAGE_DOWN)
def match(digest: str):
    """Names and URLs of other images holding a matching face, best match first

    Each matching image contributes its most recent names (`/images/<digest>/names` has all).
    """
    store = current().store
    sha256 = store.resolve(digest)
    if sha256 is None:
        return jsonify([])
    others = [other for other, _distance in faceindex.matches_for(store.redis, sha256)]
    names = dict.fromkeys(name for listed in store.names_of_each(others) for name in listed)
    return jsonify(list(names))
