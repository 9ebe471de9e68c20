"""Accepting an image: validate, keep the original, record it, queue its analysis.

Every route that receives an image (plates, faces, jobs, transforms, image service) goes
through `accept_image`, so every image gets the same analysis whatever route brought it.
An upload is answered with success only after the original is stored and the broker has
confirmed the work message: a 2xx means the image will be analysed.
"""

from __future__ import annotations

import logging
import unicodedata

import redis
from flask import g, has_request_context, request

from imagescan import imaging, topology
from imagescan.blobs import DEFAULT_CONTENT_TYPE
from imagescan.broker import BrokerUnavailable
from imagescan.digests import Digests
from imagescan.store import DONE, FAILED

from .errors import ApiError, unavailable
from .metrics import marks_upload, upload_accepted
from .services import current

log = logging.getLogger("imagescan.rest.ingest")
MAX_NAME_LENGTH = 1024
# A client marks an upload as bulk work (analysed after interactive work) with this header
# set to "bulk", or with the query parameter ?lane=bulk.
LANE_HEADER = "X-Imagescan-Lane"
BULK = "bulk"
ACCEPTED_IMAGES = "accepted_images"  # on flask.g: what this call accepted, for its log line


def check_name(name: str) -> str:
    """A filename or URL as recorded: refused when it holds control characters or is huge."""
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_LENGTH:
        raise ApiError(400, f"the name is longer than {MAX_NAME_LENGTH} bytes")
    # U+FFFD is what werkzeug puts in place of percent-encoded bytes that are not UTF-8:
    # such a name cannot be recorded as the client sent it.
    if "\ufffd" in name or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise ApiError(400, "the name contains control characters or invalid UTF-8")
    return name


def _refuse_cut_chunked_body() -> None:
    """werkzeug stops reading a chunked body at MAX_CONTENT_LENGTH without a word; one more
    read raises its 413 then, instead of the cut body being judged as a truncated image."""
    if has_request_context() and request.content_length is None:
        request.stream.read(1)


@marks_upload
def validate_image(data: bytes) -> imaging.ImageInfo:
    services = current()
    try:
        return imaging.inspect(data, services.settings.max_image_pixels, services.decode_slots)
    except imaging.ImageRejected as rejected:
        if rejected.status == 503:  # no decode slot came free: capacity, not the image
            raise unavailable("image checking") from None
        raise ApiError(rejected.status, rejected.reason) from None


def _log_accepted(image: dict, request_id: str) -> None:
    """In a request, what was accepted goes on the call's own `info` line (rest.app), which
    says `images` when there are several: one log message per API call, as the seed asks,
    and one record fewer to make per upload. Outside a request it gets its own line."""
    if has_request_context():
        g.setdefault(ACCEPTED_IMAGES, []).append(image)
    else:
        log.info("accepted %s image %s", image["format"], image["sha256"], extra={"request_id": request_id, **image})


def asked_for_bulk() -> bool:
    """The client said this upload is part of a bulk load (header or query parameter)."""
    if not has_request_context():
        return False
    return BULK in (request.headers.get(LANE_HEADER, "").lower(), request.args.get("lane", "").lower())


@marks_upload
def accept_image(data: bytes, name: str | None, *, info: imaging.ImageInfo | None = None,
                 bulk: bool | None = None) -> Digests:
    """`info`: what validate_image said of these bytes, when the caller already checked them.
    `bulk`: queue on the bulk lane (None: as the request asks, see `asked_for_bulk`)."""
    services = current()
    _refuse_cut_chunked_body()
    if name is not None:
        check_name(name)
    info = info or validate_image(data)
    digests = Digests.of(data)
    request_id = g.get("request_id", "")
    try:
        services.blobs.put(digests.sha256, data, imaging.MIME_TYPES.get(info.format, DEFAULT_CONTENT_TYPE))
        created, status = services.store.register_upload(digests, len(data), name)
    except (redis.RedisError, OSError) as exc:  # OSError: also BlobStoreUnavailable
        log.warning("storage unavailable: %r", exc, extra={"request_id": request_id})
        raise unavailable("storage") from exc
    if status not in (DONE, FAILED):
        # Queued again even when a message may already wait: if an earlier publish failed
        # after the record was written, this is what gets the image analysed. The worker
        # ignores a message for an image that is already done. A failed image is not queued
        # again: its record says why, and re-sending a poison image must not crash workers.
        try:
            services.publisher.publish(topology.ANALYZE, request_id=request_id, sha256=digests.sha256,
                                       bulk=asked_for_bulk() if bulk is None else bulk)
        except BrokerUnavailable as exc:
            log.warning("broker unavailable: %s", exc, extra={"request_id": request_id})
            raise unavailable("the work queue") from exc
    upload_accepted(created)
    _log_accepted({"format": info.format, "sha256": digests.sha256, "md5": digests.md5, "image_name": name,
                   "new": created, "image_status": status, "bytes": len(data)}, request_id)
    return digests
