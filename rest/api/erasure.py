"""Erasure: `DELETE /images/<digest>` removes an image and everything made from it.

Any of the image's digests names it. 200 with what was removed; 200 again (`already erased`)
while the erasure's tombstone is kept (a day), so a retried request is not an error; 404 for a
digest never known. Needs the `admin` scope (AUTH=keys) or an API_KEY (AUTH=seed).
What is removed: see imagescan.erasure.
"""

from __future__ import annotations

import marshmallow as ma
import redis
from flask import jsonify

from imagescan import erasure

from ..apidoc import NEEDS_KEY, NOT_FOUND, Blueprint
from ..auth import require_api_key, who
from ..errors import ApiError, unavailable
from ..schemas import Document
from ..services import current
from .images import DIGEST_PARAMETER

blueprint = Blueprint("erasure", __name__, description="Erasing an image and everything made from it")


class Erased(Document):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(["erased", "already erased"]))
    sha256 = ma.fields.String()
    digest = ma.fields.String(metadata={"description": "The digest asked for (already erased)"})
    removed = ma.fields.Dict(metadata={"description": "What was removed, by kind"})


@blueprint.delete("/images/<digest>", parameters=[DIGEST_PARAMETER])
@blueprint.response(200, Erased, description="Erased (or already erased)")
@blueprint.doc(security=NEEDS_KEY["security"], responses={
    **NEEDS_KEY["responses"], **NOT_FOUND})
@require_api_key
def delete_image(digest: str):
    """Erase the image and everything made from it

    Original, record, names, plates, faces, matches, transforms, jobs and their outputs.
    Needs the admin scope (AUTH=keys) or an API_KEY (AUTH=seed).
    """
    services = current()
    try:
        sha256 = services.store.resolve(digest) or erasure.unfinished(services.redis, digest)
        erased = erasure.erase(services.store, services.blobs, sha256, who=who()) if sha256 else None
        if erased is None and erasure.recently_erased(services.redis, digest):
            return jsonify({"digest": digest.lower(), "status": "already erased"})
    except (redis.RedisError, OSError):
        raise unavailable("storage") from None
    except erasure.ErasureContended:
        raise unavailable("the image is changing; the erasure") from None
    if erased is None:
        raise ApiError(404, f"no image with digest {digest!r} (MD5, SHA-224 or SHA-256 hex)")
    return jsonify({"sha256": erased.sha256, "status": "erased", "removed": erased.removed})
