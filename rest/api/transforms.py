"""prog-image API: upload an image, download it converted, in grayscale or mirrored.

- `POST /upload_file` (multipart field `image`) -> the SHA-256 as a `text/plain` body, or
  `{"image_id": sha256}` when the client asks for `Accept: application/json`.
- `GET /<id>/jpeg|png|grayscale|mirror` -> the transformed image; `<id>` is any of the image's
  MD5, SHA-224 or SHA-256. Output formats are described in imagescan.transforms.

Results are cached in Redis for a day (`keys.transform_cache`), up to CACHE_MAX_BYTES each.
Decoding is bounded by MAX_IMAGE_PIXELS and at most TRANSFORM_SLOTS transforms run at once
per process, so a few large images cannot take every request thread's CPU and memory;
a request that waits longer than SLOT_WAIT_SECONDS for a slot gets 503 + Retry-After.
"""

from __future__ import annotations

import threading

import redis
from flask import Response, jsonify, request

from imagescan import erasure, keys, transforms
from imagescan.imaging import ImageRejected

from ..apidoc import BAD_IMAGE, DIGEST, NOT_FOUND, Blueprint, ImageUpload, error, files, path_parameter
from ..errors import RETRY_AFTER_SECONDS, ApiError, missing_original, unavailable
from ..ingest import accept_image
from ..services import current

blueprint = Blueprint("transforms", __name__, description="prog-image: upload, then download converted")

CACHE_TTL_SECONDS = 24 * 3600
CACHE_MAX_BYTES = 8 * 1024 * 1024
TRANSFORM_SLOTS = 2
SLOT_WAIT_SECONDS = 30
_slots = threading.BoundedSemaphore(TRANSFORM_SLOTS)


@blueprint.post("/upload_file")
@blueprint.doc(responses={200: {"description": "The image id (JSON when asked for with Accept)", "content": {
    "text/plain": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object", "properties": {"image_id": {"type": "string"}}}},
}}, **BAD_IMAGE})
@blueprint.arguments(ImageUpload, location="files")
def upload_file(form: dict):
    """Upload an image; the answer is its id (SHA-256)"""
    upload = form["image"]
    digests = accept_image(upload.read(), upload.filename or None)
    wanted = request.accept_mimetypes.best_match(["text/plain", "application/json"])
    if wanted == "application/json":
        return jsonify({"image_id": digests.sha256})
    return Response(digests.sha256, mimetype="text/plain")


def _pack(rendered: transforms.Rendered) -> bytes:
    return rendered.content_type.encode() + b"\n" + rendered.data


def _unpack(cached: bytes) -> transforms.Rendered:
    content_type, _, data = cached.partition(b"\n")
    return transforms.Rendered(data, content_type.decode())


def _compute(sha256: str, operation: str) -> transforms.Rendered:
    return render_stored(sha256, lambda image: transforms.transform(image, operation))


def render_stored(sha256: str, render) -> transforms.Rendered:
    """`render(opened image)` on an image's stored original, in one of the transform slots."""
    services = current()
    data = services.blobs.get(sha256)  # the one copy in memory; the decoded pixels are another matter
    if data is None:
        raise missing_original(sha256)
    if not _slots.acquire(timeout=SLOT_WAIT_SECONDS):
        raise ApiError(503, "too many transforms in progress; retry shortly", headers={"Retry-After": RETRY_AFTER_SECONDS})
    try:
        return render(transforms.open_image(data, services.settings.max_image_pixels))
    except ImageRejected as rejected:
        raise ApiError(rejected.status, rejected.reason) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt data
        raise ApiError(422, f"the stored image cannot be decoded: {exc!r}") from None
    finally:
        _slots.release()


def transformed(image_id: str, operation: str):
    services = current()
    try:
        sha256 = services.store.resolve(image_id)
        if sha256 is None:
            raise ApiError(404, f"no image {image_id!r}")
        cache_key = keys.transform_cache(sha256, operation)
        cached = services.redis.get(cache_key)
        if cached is not None:
            rendered = _unpack(cached)
        else:
            rendered = _compute(sha256, operation)
            if len(rendered.data) <= CACHE_MAX_BYTES:
                # only while the image is stored: an erasure meanwhile must not leave a copy
                erasure.set_while_stored(services.redis, cache_key, sha256, _pack(rendered), CACHE_TTL_SECONDS)
    except (redis.RedisError, OSError):
        raise unavailable("storage") from None
    response = Response(rendered.data, mimetype=rendered.content_type)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


TRANSFORM_ERRORS = {
    400: error("The stored original's header is corrupt"),
    413: error("Image over MAX_IMAGE_PIXELS"),
    415: error("The stored original is not in a format the service reads"),
    422: error("The stored original cannot be decoded"),
    503: error("Busy or storage unavailable", retry_after=True),
}
_SUMMARIES = {
    "jpeg": "As JPEG (quality 95; transparency composited over white)",
    "png": "As PNG (lossless)",
    "grayscale": "Pillow convert('L'); JPEG for JPEG sources, PNG otherwise",
    "mirror": "Flipped left-right; JPEG for JPEG sources, PNG otherwise",
}
for _operation in transforms.OPERATIONS:
    blueprint.add_url_rule(
        f"/<image_id>/{_operation}",
        endpoint=_operation,
        view_func=blueprint.doc(summary=_SUMMARIES[_operation], responses={
            200: files("The transformed image", ("image/jpeg", "image/png")), **NOT_FOUND, **TRANSFORM_ERRORS,
        })(transformed),
        defaults={"operation": _operation},
        methods=["GET"],
        parameters=[path_parameter("image_id", DIGEST)],
    )
