"""Erasure: `DELETE /images/<digest>` removes an image and everything made from it.

Any of the image's digests names it. 200 with what was removed; 200 again (`already erased`)
while the erasure's tombstone is kept (a day), so a retried request is not an error; 404 for a
digest never known. Needs the `admin` scope (AUTH=keys) or an API_KEY (AUTH=seed).
What is removed: see imagescan.erasure.
"""

from __future__ import annotations

import redis
from flask import Blueprint, jsonify

from imagescan import erasure

from ..auth import require_api_key, who
from ..errors import ApiError, unavailable
from ..services import current

blueprint = Blueprint("erasure", __name__)


@blueprint.delete("/images/<digest>")
@require_api_key
def delete_image(digest: str):
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
