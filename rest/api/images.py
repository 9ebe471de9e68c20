"""The image record of any digest, and all its names."""

from __future__ import annotations

import functools

import marshmallow as ma
from flask import jsonify, url_for

from imagescan import faceindex

from ..apidoc import DIGEST, NOT_FOUND, STORAGE_DOWN, Blueprint, path_parameter, whole_number
from ..auth import caller_has_scope
from ..errors import ApiError
from ..schemas import Analysis, Document
from ..services import current

blueprint = Blueprint("images", __name__, description="Everything known about an image, by any of its digests")
DIGEST_PARAMETER = path_parameter("digest", DIGEST)


def resolve_or_404(digest: str) -> str:
    sha256 = current().store.resolve(digest)
    if sha256 is None:
        raise ApiError(404, f"no image with digest {digest!r} (MD5, SHA-224 or SHA-256 hex)")
    return sha256


def known_image(view):
    """The view gets the image's `sha256`; an unknown digest is a 404 before the rest of the
    request is looked at."""

    @functools.wraps(view)
    def with_sha256(*args, digest: str, **kwargs):
        return view(*args, digest=digest, sha256=resolve_or_404(digest), **kwargs)

    return with_sha256


@blueprint.get("/images/<digest>", parameters=[DIGEST_PARAMETER])
@blueprint.response(200, Analysis, description="The image's record (`faces` is null for a key without the faces scope)")
@blueprint.doc(responses={**NOT_FOUND, **STORAGE_DOWN})
@known_image
def image_analysis(digest: str, sha256: str):
    """Everything known about an image"""
    services = current()
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


class NamesQuery(ma.Schema):
    offset = whole_number("offset", 0, 2**31, 0)
    limit = whole_number("limit", 1, MAX_NAMES_PAGE, 100)


class NamesPage(Document):
    names = ma.fields.List(ma.fields.String())
    total = ma.fields.Integer()
    offset = ma.fields.Integer()
    next = ma.fields.String(allow_none=True, metadata={"description": "Path of the next page; null on the last one"})


@blueprint.get("/images/<digest>/names", parameters=[DIGEST_PARAMETER])
@blueprint.response(200, NamesPage, description="A page of names")
@blueprint.doc(responses={**NOT_FOUND, **STORAGE_DOWN})
@known_image
@blueprint.arguments(NamesQuery, location="query")
def image_names(page: dict, digest: str, sha256: str):
    """Every name of an image, a page at a time, first seen first

    `/images` and `/match` show the most recent names only.
    """
    offset, limit = page["offset"], page["limit"]
    names, total = current().store.names_page(sha256, offset, limit)
    following = offset + len(names)
    more = following < total and names
    return jsonify({"names": names, "total": total, "offset": offset,
                    "next": url_for(".image_names", digest=digest, offset=following, limit=limit) if more else None})
