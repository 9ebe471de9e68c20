"""What the web console reads beyond the seed APIs: recent images, thumbnails, stat counts.

- `GET /images?limit=N&cursor=C` -> `{"images": [...], "next": cursor or null}`, newest
  first (see imagescan.recent); `limit` 1..MAX_LIMIT, default DEFAULT_LIMIT.
- `GET /images/<digest>/thumbnail?size=S` -> a JPEG of the upright image, at most S pixels on
  a side (S one of THUMBNAIL_SIZES), cached in Redis for a day.
- `GET /api/stats/counts` (x-api-key, like /api/stats) -> the numbers behind /api/stats:
  uploads on each of the last 30 UTC days (zeros included), images per format and per camera.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import marshmallow as ma
from flask import Response, jsonify, request

from imagescan import erasure, imaging, keys, recent, transforms

from ..apidoc import NEEDS_KEY, NOT_FOUND, STORAGE_DOWN, Blueprint, WholeNumber, error, whole_number
from ..auth import require_api_key
from ..errors import ApiError
from ..schemas import STATUSES, Candidate, Document
from ..services import current
from .images import DIGEST_PARAMETER, resolve_or_404
from .transforms import TRANSFORM_ERRORS, render_stored

blueprint = Blueprint("listing", __name__, description="What the web console reads: recent images, thumbnails, counts")

DEFAULT_LIMIT = 24
MAX_LIMIT = 100
THUMBNAIL_SIZES = transforms.THUMBNAIL_SIZES
THUMBNAIL_TTL_SECONDS = 24 * 3600
STATS_DAYS = 30


class PageQuery(ma.Schema):
    limit = whole_number("limit", 1, MAX_LIMIT, DEFAULT_LIMIT, metadata={"description": "Images per page"})
    cursor = ma.fields.String(load_default=None, metadata={
        "description": "`next` of the previous page; absent for the first page"})


class ImageSummary(Document):
    sha256 = ma.fields.String(required=True)
    md5 = ma.fields.String()
    names = ma.fields.List(ma.fields.String(), required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(STATUSES))
    received_at = ma.fields.DateTime()
    format = ma.fields.String(allow_none=True)
    plates = ma.fields.List(ma.fields.Nested(Candidate))
    faces = ma.fields.Integer(validate=ma.validate.Range(0), metadata={"description": "How many faces were found"})
    error = ma.fields.String(metadata={"description": "Why the analysis failed"})


class ImagePage(Document):
    images = ma.fields.List(ma.fields.Nested(ImageSummary), required=True)
    next = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "Cursor of the next (older) page; null on the last page"})


@blueprint.get("/images")
@blueprint.response(200, ImagePage, description="One page")
@blueprint.doc(responses={400: error("limit out of range or a cursor this service did not hand out"),
                          **STORAGE_DOWN})
@blueprint.arguments(PageQuery, location="query")
def recent_images(query: dict):
    """Recent images, newest first, a page at a time"""
    try:
        return jsonify(recent.page(current().redis, query["cursor"] or None, query["limit"]))
    except recent.BadCursor as bad:
        raise ApiError(400, str(bad)) from None


_SIZES = f"size must be one of {', '.join(map(str, THUMBNAIL_SIZES))}"


class ThumbnailQuery(ma.Schema):
    size = WholeNumber(load_default=256, validate=ma.validate.OneOf(THUMBNAIL_SIZES, error=_SIZES),
                       error_messages={"invalid": _SIZES}, metadata={"description": "Longest side in pixels"})


@blueprint.get("/images/<digest>/thumbnail", parameters=[DIGEST_PARAMETER])
@blueprint.response(200, {"type": "string", "format": "binary"}, content_type="image/jpeg", description="JPEG")
@blueprint.doc(responses={304: {"description": "Not modified"}, **NOT_FOUND, **TRANSFORM_ERRORS})
@blueprint.arguments(ThumbnailQuery, location="query")
def thumbnail(query: dict, digest: str):
    """A small JPEG of the upright image (cached for a day)"""
    size = query["size"]
    sha256 = resolve_or_404(digest)
    services = current()
    data = services.redis.get(keys.thumbnail(sha256, size))
    if data is None:
        # Rendered in the transforms' slots: at most a few whole-image decodes run at once.
        data = render_stored(sha256, lambda image: transforms.thumbnail(image, size)).data
        # Cached only while the image exists: an erasure meanwhile must not leave a thumbnail.
        erasure.set_while_stored(services.redis, keys.thumbnail(sha256, size), sha256, data,
                                 THUMBNAIL_TTL_SECONDS)
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.set_etag(f"{sha256}-{size}")
    return response.make_conditional(request)


def _counted(name: str, field: ma.fields.Field) -> type[ma.Schema]:
    return Document.from_dict({name: field, "count": ma.fields.Integer(validate=ma.validate.Range(0))},
                              name=f"{name.capitalize()}Count")


class StatCounts(Document):
    uploads_per_day = ma.fields.List(ma.fields.Nested(_counted("day", ma.fields.Date())), required=True,
                                     metadata={"description": "The last 30 UTC days, oldest first"})
    formats = ma.fields.List(ma.fields.Nested(_counted("format", ma.fields.String())), required=True)
    cameras = ma.fields.List(ma.fields.Nested(_counted("camera", ma.fields.String())), required=True,
                             metadata={"description": "Top 10, most images first"})


@blueprint.get("/api/stats/counts")
@blueprint.response(200, StatCounts, description="Counts")
@blueprint.doc(**NEEDS_KEY)
@require_api_key
def stat_counts():
    """The counts behind /api/stats (for charts)"""
    store = current().store
    today = datetime.now(UTC).date()
    per_day = store.uploads_per_day(STATS_DAYS)
    days = [(today - timedelta(days=offset)).isoformat() for offset in reversed(range(STATS_DAYS))]
    formats: dict[str, int] = {}
    for fmt, count in store.top_formats(100):
        name = imaging.format_name(fmt)
        formats[name] = formats.get(name, 0) + count
    return jsonify({
        "uploads_per_day": [{"day": day, "count": per_day.get(day, 0)} for day in days],
        "formats": [{"format": f, "count": c} for f, c in sorted(formats.items(), key=lambda i: (-i[1], i[0]))],
        "cameras": [{"camera": camera, "count": count} for camera, count in store.top_cameras(10)],
    })
