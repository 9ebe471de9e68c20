"""Image-service API: upload links, batch uploads, originals by id, statistics.

Every route but `GET /api/images/<id>` needs an `x-api-key` (see rest.auth).

- `POST /api/generate-upload-link` `{"expiry": seconds}` (optional, default 60, 1..86400)
  -> `{"upload_id", "expiry"}`; the id is usable until it expires.
- `POST /api/upload-images/<upload_id>` repeated multipart field `image_files`
  -> `{filename: sha256}`. Every file is checked before any is stored: one non-image
  refuses the whole request (400/413/415 naming the file). An image sent again returns the
  same id and is not counted again. Unknown or expired upload id -> 404.
- `GET|HEAD /api/images/<id>` -> the original bytes (any of the image's digests as id), streamed
  from the blob store; ETag (the SHA-256), If-None-Match, and one `Range` per request (206/416).
- `GET /api/stats` -> exactly the three keys of the original service; the frequency lists only
  the UTC days (of the last 30) with at least one new image, oldest first; the format is
  null while no image has been analysed.
"""

from __future__ import annotations

import functools
import uuid
from typing import ClassVar

import marshmallow as ma
import redis
from flask import Response, jsonify, request
from flask_smorest.fields import Upload

from imagescan import imaging, keys

from ..apidoc import (
    BAD_IMAGE,
    DIGEST,
    NEEDS_KEY,
    NOT_FOUND,
    Blueprint,
    error,
    files,
    path_parameter,
    whole_number,
)
from ..auth import require_api_key
from ..errors import ApiError, missing_original, unavailable
from ..ingest import accept_image, validate_image
from ..schemas import Document
from ..services import current

blueprint = Blueprint("image_service", __name__, description="Image service: upload links, originals, statistics")

DEFAULT_EXPIRY_SECONDS = 60
MAX_EXPIRY_SECONDS = 86400
STATS_DAYS = 30
TOP_CAMERAS = 10
FREQUENCY_KEY = "Image Upload Frequency Per Day (last 30 days)"
FORMAT_KEY = "Most Popular Image Format"
CAMERAS_KEY = "Top 10 Popular Camera Models"


class LinkRequest(ma.Schema):
    error_messages: ClassVar = {"type": 'the body must be a JSON object like {"expiry": 60}'}

    expiry = whole_number("expiry", 1, MAX_EXPIRY_SECONDS, DEFAULT_EXPIRY_SECONDS, spaces=True,
                          metadata={"description": "Seconds the upload id stays valid"})


class UploadLink(Document):
    upload_id = ma.fields.UUID(required=True)
    expiry = ma.fields.Integer(metadata={"description": "Seconds it stays valid"})


@blueprint.post("/api/generate-upload-link")
@blueprint.response(200, UploadLink, description="The upload id")
@blueprint.doc(**NEEDS_KEY)
@require_api_key  # the key is checked before the body is read
@blueprint.arguments(LinkRequest, required=False, description="Optional: no body is {\"expiry\": 60}")
def generate_upload_link(body: dict):
    """A temporary upload id"""
    expiry = body["expiry"]
    upload_id = str(uuid.uuid4())
    try:
        current().redis.set(keys.upload_link(upload_id), "1", ex=expiry)
    except redis.RedisError:
        raise unavailable("storage") from None
    return jsonify({"upload_id": upload_id, "expiry": expiry})


def _link_is_live(upload_id: str) -> bool:
    try:
        canonical = str(uuid.UUID(upload_id))
    except ValueError:
        return False
    try:
        return bool(current().redis.exists(keys.upload_link(canonical)))
    except redis.RedisError:
        raise unavailable("storage") from None


def live_link(view):
    """An unknown or expired upload id is a 404 before the files are looked at."""

    @functools.wraps(view)
    def checked(*args, upload_id: str, **kwargs):
        if not _link_is_live(upload_id):
            raise ApiError(404, "unknown or expired upload id; ask /api/generate-upload-link for a new one")
        return view(*args, upload_id=upload_id, **kwargs)

    return checked


_SEND_FILES = "send the images as repeated multipart fields 'image_files'"


class ImageFiles(ma.Schema):
    image_files = ma.fields.List(Upload(), required=True, validate=ma.validate.Length(min=1, error=_SEND_FILES),
                                 error_messages={"required": _SEND_FILES},
                                 metadata={"description": "One or more images"})


@blueprint.post("/api/upload-images/<upload_id>", parameters=[path_parameter("upload_id", "From /api/generate-upload-link")])
@blueprint.response(200, {"type": "object", "additionalProperties": {"type": "string"}},
                    description="filename -> SHA-256; an image sent again keeps its first id")
@blueprint.doc(security=NEEDS_KEY["security"], responses={
    **BAD_IMAGE, **NEEDS_KEY["responses"], 404: error("Unknown or expired upload id")})
@require_api_key
@live_link
@blueprint.arguments(ImageFiles, location="files")
def upload_images(form: dict, upload_id: str):
    """Upload images with an upload id

    Every file is checked before any is stored: one non-image refuses the whole request
    (400/413/415 naming the file).
    """
    named = []
    for position, upload in enumerate(form["image_files"], start=1):
        name = upload.filename or f"image_files #{position}"
        data = upload.read()
        try:
            info = validate_image(data)
        except ApiError as error:
            raise ApiError(error.status, f"{name}: {error.message}", file=name) from None
        named.append((name, data, info))
    # A batch of several images is bulk work: analysed after single uploads and jobs.
    bulk = len(named) > 1 or None
    return jsonify({name: accept_image(data, name, info=info, bulk=bulk).sha256 for name, data, info in named})


class RangeHeader(ma.Schema):
    range = ma.fields.String(data_key="Range", metadata={"description": "One range: `bytes=0-99`, `bytes=-500`"})


@blueprint.get("/api/images/<image_id>", parameters=[path_parameter("image_id", DIGEST)])
@blueprint.doc(parameters=[{"in": "header", "schema": RangeHeader}], responses={
    200: files("The bytes as uploaded"),
    206: files("The requested byte range (Content-Range)"),
    304: {"description": "Not modified"},
    **NOT_FOUND,
    416: error("The range is outside the image"),
    503: error("The blob store or Redis is unavailable", retry_after=True),
})
def original_image(image_id: str):
    """The original image (no key needed)

    Streamed from the blob store; ETag is the SHA-256. One `Range` per request; `HEAD`
    gives the headers alone.
    """
    blobs = current().blobs
    sha256, info = _stored_original(image_id)
    response = Response(mimetype=info.content_type)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"  # served as the image type, nothing else
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Content-Length"] = str(info.size)
    response.set_etag(sha256)
    response.make_conditional(request)  # If-None-Match -> 304
    if response.status_code != 200:
        return response
    start, stop = _byte_range(sha256, info.size)
    if (start, stop) != (0, info.size):
        response.status_code = 206
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
        response.headers["Content-Length"] = str(stop - start)
    if request.method == "HEAD":
        return response
    try:
        stream = blobs.open(sha256, start, stop)
    except (redis.RedisError, OSError):
        raise unavailable("storage") from None
    if stream is None:
        raise missing_original(sha256)
    response.response = stream
    return response


def _stored_original(image_id: str):
    services = current()
    try:
        sha256 = services.store.resolve(image_id)
        info = services.blobs.stat(sha256) if sha256 else None
    except (redis.RedisError, OSError):
        raise unavailable("storage") from None
    if sha256 is None:
        raise ApiError(404, f"no image {image_id!r}")
    if info is None:
        raise missing_original(sha256)
    return sha256, info


def _byte_range(sha256: str, size: int) -> tuple[int, int]:
    """[start, stop) asked by a single-range `Range` header, else the whole blob.

    Several ranges, an unparsable header or an If-Range naming other content: the whole blob
    (RFC 9110 lets a server ignore Range). A range beyond the end: 416.
    """
    asked = request.range
    if_range = request.if_range
    if (asked is None or len(asked.ranges) != 1 or if_range.date is not None
            or (if_range.etag is not None and if_range.etag != sha256)):
        return 0, size
    bounds = asked.range_for_length(size)
    if bounds is None:
        raise ApiError(416, f"the range is outside the image's {size} bytes",
                       headers={"Content-Range": f"bytes */{size}"})
    return bounds


def _most_popular_format(store) -> str | None:
    counts: dict[str, int] = {}
    for fmt, count in store.top_formats(100):
        name = imaging.format_name(fmt)
        counts[name] = counts.get(name, 0) + count
    if not counts:
        return None
    return max(sorted(counts), key=counts.__getitem__)


class Stats(Document):
    class Meta:
        unknown = ma.RAISE  # exactly these three keys

    frequency = ma.fields.Dict(required=True, data_key=FREQUENCY_KEY, keys=ma.fields.String(),
                               values=ma.fields.Integer(), metadata={
                                   "description": "UTC day (YYYY-MM-DD) -> new images; days without uploads are "
                                                  "left out", "example": {"2024-05-06": 3}})
    format = ma.fields.String(required=True, allow_none=True, data_key=FORMAT_KEY, metadata={"example": "JPEG"})
    cameras = ma.fields.List(ma.fields.String(), required=True, data_key=CAMERAS_KEY,
                             metadata={"example": ["Google - Pixel 6a"]})


@blueprint.get("/api/stats")
@blueprint.response(200, Stats, description="Statistics")
@blueprint.doc(**NEEDS_KEY)
@require_api_key
def stats():
    """Upload and image statistics"""
    store = current().store
    try:
        body = {
            FREQUENCY_KEY: store.uploads_per_day(STATS_DAYS),
            FORMAT_KEY: _most_popular_format(store),
            CAMERAS_KEY: [label for label, _ in store.top_cameras(TOP_CAMERAS)],
        }
    except redis.RedisError:
        raise unavailable("storage") from None
    return jsonify(body)
