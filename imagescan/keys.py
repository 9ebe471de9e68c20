"""The Redis key schema. This is the only module that spells a Redis key.

Every image is one record keyed by the SHA-256 of its bytes; MD5 and SHA-224
are aliases. The README's "Redis key schema" section documents these keys.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

# -- images ------------------------------------------------------------------


def image(sha256: str) -> str:
    """Hash: status, digests, format, size, analysis JSON, error, timestamps."""
    return f"img:{sha256}"


def image_names(sha256: str) -> str:
    """Sorted set: filename or URL -> time first seen (keeps first-seen order)."""
    return f"img:{sha256}:names"


def digest_alias(digest: str) -> str:
    """String: MD5 or SHA-224 hex -> SHA-256 hex of the same image."""
    return f"alias:{digest}"


def erased(digest: str) -> str:
    """String with a TTL: tombstone of an image just erased (one per digest), so an analysis
    under way cannot bring it back. Named by a one-way hash of the digest, never the digest."""
    fingerprint = hashlib.sha256(f"imagescan-erased:{digest.lower()}".encode()).hexdigest()
    return f"erased:{fingerprint}"


def url_seen(url_digest: str) -> str:
    """String: SHA-256 of a scanned URL -> SHA-256 of the image it gave."""
    return f"url:{url_digest}"


def blob(sha256: str) -> str:
    """String: original bytes of an image (Redis blob store backend)."""
    return f"blob:{sha256}"


# -- plates ------------------------------------------------------------------


def plate_images(plate: str) -> str:
    """Set: SHA-256 of every image showing this normalised plate."""
    return f"plate:{plate}"


def known_plates() -> str:
    """Set: every normalised plate ever indexed (for fuzzy search)."""
    return "plates"


def plate_fuzzy_bucket(bucket: int | str) -> str:
    """Hash: lookalike-folded plate variant -> comma-separated plates (imagescan.plateindex).
    With "" the prefix, to which the index's lookup script appends the bucket number."""
    return f"plate:fz:{bucket}"


# -- faces -------------------------------------------------------------------


class FacePartition(NamedTuple):
    """The keys of one face partition (imagescan.facestore): all carry the hash tag {f<p>}, so
    every script over a partition touches one Redis Cluster slot."""

    state: str  # Hash: seq (last face number), erased (erasures so far), stamp (newest face number@time)
    records: str  # Hash: face id -> owner SHA-256 (64 hex) + 128 float32 (512 bytes)
    image_ids: str  # Hash: owner SHA-256 -> its face ids, comma-separated
    erasures: str  # Sorted set: id of an erased face -> the partition's erasure number


def face_partition(partition: int) -> FacePartition:
    tag = f"face:{{f{int(partition)}}}"
    return FacePartition(f"{tag}:state", f"{tag}:enc", f"{tag}:img", f"{tag}:erased")


def image_faces(sha256: str) -> str:
    """String: JSON list of the image's faces [{"id", "box"}]."""
    return f"img:{sha256}:faces"


def image_matches(sha256: str) -> str:
    """Sorted set: SHA-256 of another image with a matching face -> best distance."""
    return f"img:{sha256}:matches"


# -- work attempts -------------------------------------------------------------


def work_attempts(kind: str, subject: str) -> str:
    """Counter with a TTL: deliveries of one piece of work (an image's analysis, a job's
    rendering) that a worker started; past MAX_ATTEMPTS the work is set aside."""
    return f"attempts:{kind}:{subject}"


# -- jobs, transforms, upload links -------------------------------------------


def job(job_id: str) -> str:
    """Hash: status, sha256, message, output sha256, timestamps."""
    return f"job:{job_id}"


def image_jobs(sha256: str) -> str:
    """Set: ids of jobs waiting for this image's analysis."""
    return f"img:{sha256}:jobs"


def image_job_history(sha256: str) -> str:
    """Set with a TTL: ids of every job ever made from this image, finished ones too (for erasure)."""
    return f"img:{sha256}:alljobs"


def transform_cache(sha256: str, operation: str) -> str:
    """String with a TTL: the result of a transform (jpeg, png, grayscale, mirror)."""
    return f"xform:{sha256}:{operation}"


def upload_link(upload_id: str) -> str:
    """String with the link's TTL: an upload id handed out by generate-upload-link."""
    return f"upload:{upload_id}"


def auth_failures(client: str) -> str:
    """String counter with a TTL: failed API-key attempts from one client."""
    return f"authfail:{client}"


# -- access control and retention ---------------------------------------------


def api_key(key_id: str) -> str:
    """Hash: one API key: SHA-256 of its secret, scopes, label, created_at (never the key itself)."""
    return f"apikey:{key_id}"


def api_key_ids() -> str:
    """Set: the id of every API key."""
    return "apikeys"


def retention_lock() -> str:
    """String with a TTL: held by the worker running a retention pass, so only one runs at once."""
    return "retention:lock"


# -- statistics kept at ingest ------------------------------------------------


def uploads_on_day(day: str) -> str:
    """String counter: images first received on this UTC day (YYYY-MM-DD)."""
    return f"stats:uploads:{day}"


def format_counts() -> str:
    """Sorted set: image format -> number of images."""
    return "stats:formats"


def camera_counts() -> str:
    """Sorted set: "Make - Model" -> number of images."""
    return "stats:cameras"


# -- the web console ----------------------------------------------------------


def recent_images() -> str:
    """Sorted set: SHA-256 -> time first received (Unix seconds): the newest-first listing, and
    oldest-first what retention erases."""
    return "images:recent"


def thumbnail(sha256: str, size: int) -> str:
    """String with a TTL: a JPEG of the upright image at most `size` pixels on a side."""
    return f"thumb:{sha256}:{size}"
