"""The image record of any digest, and all its names."""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for

from imagescan import faceindex

from ..auth import caller_has_scope
from ..errors import ApiError
from ..services import current

blueprint = Blueprint("images", __name__)


def resolve_or_404(digest: str) -> str:
    sha256 = current().store.resolve(digest)
    if sha256 is None:
        raise ApiError(404, f"no image with digest {digest!r} (MD5, SHA-224 or SHA-256 hex)")
    return sha256


@blueprint.get("/images/<digest>")
def image_analysis(digest: str):
    services = current()
    sha256 = resolve_or_404(digest)
    document = services.store.analysis(sha256)
    if document is None:  # vanished between the two reads
        raise ApiError(404, f"no image with digest {digest!r}")
    if not caller_has_scope("faces"):
        document["faces"] = None  # face boxes and matches need the faces scope (AUTH=keys)
    elif document["faces"]:
        # Matches keep arriving as other images are analysed: computed at read time.
        document["faces"] = faceindex.matches_by_face(services.redis, sha256, services.settings.face_tolerance)
        matches = [match for face in document["faces"] for match in face["matches"]]
        for match, names in zip(matches, services.store.names_of_each([m["sha256"] for m in matches])):
            match["names"] = names
    return jsonify(document)


MAX_NAMES_PAGE = 1000


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
    return int(raw)


@blueprint.get("/images/<digest>/names")
def image_names(digest: str):
    """All the names of an image, `limit` at a time: `/images` and `/match` show the most recent."""
    sha256 = resolve_or_404(digest)
    offset = _query_int("offset", 0, 0, 2**31)
    limit = _query_int("limit", 100, 1, MAX_NAMES_PAGE)
    names, total = current().store.names_page(sha256, offset, limit)
    following = offset + len(names)
    more = following < total and names
    return jsonify({"names": names, "total": total, "offset": offset,
                    "next": url_for(".image_names", digest=digest, offset=following, limit=limit) if more else None})

