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

from flask import Blueprint, Response, jsonify, request

from imagescan import erasure, imaging, keys, recent, transforms

from ..auth import require_api_key
from ..errors import ApiError
from ..services import current
from .images import resolve_or_404
from .transforms import render_stored

blueprint = Blueprint("listing", __name__)

DEFAULT_LIMIT = 24
MAX_LIMIT = 100
THUMBNAIL_SIZES = transforms.THUMBNAIL_SIZES
THUMBNAIL_TTL_SECONDS = 24 * 3600
STATS_DAYS = 30


def _limit() -> int:
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


@blueprint.get("/images")
def recent_images():
    cursor = request.args.get("cursor") or None
    try:
        return jsonify(recent.page(current().redis, cursor, _limit()))
    except recent.BadCursor as bad:
        raise ApiError(400, str(bad)) from None


def _size() -> int:
    raw = request.args.get("size", "256")
    if not raw.isdigit() or int(raw) not in THUMBNAIL_SIZES:
        raise ApiError(400, f"size must be one of {', '.join(map(str, THUMBNAIL_SIZES))}")
    return int(raw)


@blueprint.get("/images/<digest>/thumbnail")
def thumbnail(digest: str):
    size = _size()
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


@blueprint.get("/api/stats/counts")
@require_api_key
def stat_counts():
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
