"""The faces API (seeds/2-faces-api.md): scan by bytes or URL, match faces across images.

`/scan/*` answer the SHA-224 their clients expect. Every image, whatever route brought
it, gets the same analysis (plates and geotag too).
"""

from __future__ import annotations

import logging
import threading

import redis
from flask import Blueprint, current_app, jsonify, request

from imagescan import faceindex
from imagescan.urlfetch import FetchRefused, fetch_image

from ..errors import RETRY_AFTER_SECONDS, ApiError, unavailable
from ..ingest import accept_image, check_name
from ..services import current

blueprint = Blueprint("faces", __name__)
log = logging.getLogger("imagescan.rest.faces")
URL_FETCH_SLOTS = "imagescan.url_fetch_slots"


@blueprint.post("/scan/image/<path:filename>")
def scan_image(filename: str):
    digests = accept_image(request.get_data(cache=False), filename)
    return jsonify({"hash": digests.sha224})


def _requested_url() -> str:
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict) or not isinstance(body.get("url"), str) or not body["url"].strip():
        raise ApiError(400, 'send a JSON object with the image URL: {"url": "https://..."}')
    return check_name(body["url"].strip())


def _url_fetch_slots(limit: int) -> threading.BoundedSemaphore:
    """One per app: each fetch holds a request thread for up to 3 x URL_FETCH_TIMEOUT, so
    slow URLs must not take every thread the REST has."""
    return current_app.extensions.setdefault(URL_FETCH_SLOTS, threading.BoundedSemaphore(limit))


@blueprint.post("/scan/url")
def scan_url():
    url = _requested_url()
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


@blueprint.get("/match/<digest>")
def match(digest: str):
    """Names and URLs of other images holding a matching face, best match first.

    Each matching image contributes its most recent names (`/images/<digest>/names` has all).
    """
    store = current().store
    sha256 = store.resolve(digest)
    if sha256 is None:
        return jsonify([])
    others = [other for other, _distance in faceindex.matches_for(store.redis, sha256)]
    names = dict.fromkeys(name for listed in store.names_of_each(others) for name in listed)
    return jsonify(list(names))
