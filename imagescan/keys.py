"""The Redis key schema. This is the only module that spells a Redis key.

Every image is one record keyed by the SHA-256 of its bytes; MD5 and SHA-224 are aliases.
The README's "Redis key schema" section documents these keys.

Built for Redis Cluster as well as one Redis: every Lua script and transaction touches keys of
one hash slot, which a cluster requires. Hence:

* the keys of one image carry its SHA-256 as a hash tag (`img:{<sha256>}...`), so they share a
  slot, and so do its cached transforms, thumbnails and analysis attempts;
* an index that would otherwise be one key holding every image or plate is split into SHARDS
  pieces (`...{s<n>}...`) that readers merge; a plate's image set carries its plate's shard tag,
  so it shares the slot of the known-plates piece that lists the plate;
* the statistics are small and share one tag (`{stats}`), with the markers that make each
  counting step happen once;
* what is looked up by itself (an alias, a URL, a blob, a job, an API key) is a key of its own,
  in whatever slot it hashes to.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import NamedTuple

SHARDS = 16  # pieces of each split index; fixed: the data is laid out by it


def shard_of(value: str) -> int:
    """Which piece of a split index a value (SHA-256, plate, ...) belongs to."""
    return zlib.crc32(value.encode("utf-8", "surrogatepass")) % SHARDS


def _shard_tag(shard: int) -> str:
    return "{s" + str(int(shard) % SHARDS) + "}"


def _fingerprint(purpose: str, value: str) -> str:
    """A one-way name for a digest: a key that must not spell the digest (after an erasure)."""
    return hashlib.sha256(f"imagescan-{purpose}:{value.lower()}".encode()).hexdigest()


def _looked_up_by_itself(prefix: str, holds: str):
    """The name function of a key looked up by itself, `<prefix>:<value>`: in whatever slot."""

    def name(value: str) -> str:
        return f"{prefix}:{value}"

    name.__doc__ = holds
    return name


def _of_image(part: str, holds: str):
    """The name function of one of an image's own keys, `img:{<sha256>}:<part>`: in its slot."""

    def name(sha256: str) -> str:
        return f"{image(sha256)}:{part}"

    name.__doc__ = holds
    return name


# -- images ------------------------------------------------------------------


def image(sha256: str) -> str:
    """Hash: status, digests, format, size, analysis JSON, error, timestamps."""
    return "img:{" + sha256 + "}"


image_names = _of_image("names", "Sorted set: filename or URL -> time first seen (keeps first-seen order).")
image_erasure = _of_image("erasing", "Hash: what an erasure under way still has to remove elsewhere (imagescan.erasure).")
image_jobs = _of_image("jobs", "Set: ids of jobs waiting for this image's analysis.")
image_job_history = _of_image("alljobs", "Set with a TTL: ids of every job ever made from this image, finished ones too (for erasure).")


def digest_alias(digest: str) -> str:
    """String: MD5 or SHA-224 hex -> SHA-256 hex of the same image."""
    return "alias:{" + digest + "}"


def erased(digest: str) -> str:
    """String with a TTL: tombstone of an image just erased (one per digest), so an analysis
    under way cannot bring it back. Named by a one-way hash of the digest, never the digest."""
    return "erased:{" + _fingerprint("erased", digest) + "}"


url_seen = _looked_up_by_itself("url", "String: SHA-256 of a scanned URL -> SHA-256 of the image it gave.")
blob = _looked_up_by_itself("blob", "String: original bytes of an image (Redis blob store backend).")


# -- plates ------------------------------------------------------------------


def plate_images(plate: str) -> str:
    """Set: SHA-256 of every image showing this normalised plate (in the plate's shard)."""
    return f"plate:{_shard_tag(shard_of(plate))}:{plate}"


def known_plates(shard: int) -> str:
    """Set: every normalised plate of this shard ever indexed (the shards together: all)."""
    return f"plates:{_shard_tag(shard)}"


def known_plates_of(plate: str) -> str:
    """The known-plates piece listing this plate: the slot of `plate_images(plate)`."""
    return known_plates(shard_of(plate))


def plate_fuzzy_bucket(bucket: int) -> str:
    """Hash: lookalike-folded plate variant -> comma-separated plates (imagescan.plateindex)."""
    return f"{plate_fuzzy_prefix(bucket % SHARDS)}{bucket}"


def plate_fuzzy_prefix(shard: int) -> str:
    """The name of a fuzzy bucket of this shard without its number (bucket % SHARDS == shard):
    the index's lookup script appends the number."""
    return f"plate:fz:{_shard_tag(shard)}:"


def plate_pair_bucket(bucket: int) -> str:
    """Hash: lookalike-folded plate with two characters deleted -> comma-separated plates
    (imagescan.plateindex); in the slot of the fuzzy buckets of its piece."""
    return f"{plate_pair_prefix(bucket % SHARDS)}{bucket}"


def plate_pair_prefix(shard: int) -> str:
    """As plate_fuzzy_prefix, for the two-deletion buckets."""
    return f"plate:fz2:{_shard_tag(shard)}:"


def plate_pairs_filed() -> str:
    """String: present once every plate of the fuzzy index has its two-deletion forms filed
    (a fresh index, or one completed by `python -m imagescan.migrate`); never removed."""
    return "plate:fz2:complete"


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
    return f"{image(sha256)}:faces"


def image_matches(sha256: str) -> str:
    """Sorted set: SHA-256 of another image with a matching face -> best distance."""
    return f"{image(sha256)}:matches"


# -- work attempts -------------------------------------------------------------


def work_attempts(kind: str, subject: str) -> str:
    """Counter with a TTL: deliveries of one piece of work (an image's analysis, a job's
    rendering) that a worker started; past MAX_ATTEMPTS the work is set aside. Tagged by its
    subject: an image's attempts share the image's slot."""
    return f"attempts:{kind}:" + "{" + subject + "}"


# -- jobs, transforms, upload links -------------------------------------------


job = _looked_up_by_itself("job", "Hash: status, sha256, message, output sha256, timestamps.")
upload_link = _looked_up_by_itself("upload", "String with the link's TTL: an upload id handed out by generate-upload-link.")
auth_failures = _looked_up_by_itself("authfail", "String counter with a TTL: failed API-key attempts from one client.")


def transform_cache(sha256: str, operation: str) -> str:
    """String with a TTL: the result of a transform (jpeg, png, grayscale, mirror)."""
    return "xform:{" + sha256 + "}:" + operation


# -- access control and retention ---------------------------------------------


api_key = _looked_up_by_itself("apikey", "Hash: one API key: SHA-256 of its secret, scopes, label, created_at (never the key itself).")


def api_key_ids() -> str:
    """Set: the id of every API key (a few: one key is enough, also on a cluster)."""
    return "apikeys"


def retention_lock() -> str:
    """String with a TTL: held by the worker running a retention pass, so only one runs at once."""
    return "retention:lock"


# -- statistics kept at ingest: one slot, {stats} ------------------------------


def uploads_on_day(day: str) -> str:
    """String counter: images first received on this UTC day (YYYY-MM-DD)."""
    return "stats:{stats}:uploads:" + day


def format_counts() -> str:
    """Sorted set: image format -> number of images."""
    return "stats:{stats}:formats"


def camera_counts() -> str:
    """Sorted set: "Make - Model" -> number of images."""
    return "stats:{stats}:cameras"


def stats_step_done(sha256: str, incarnation: str, step: str) -> str:
    """String with a TTL, beside the counters: this counting step of this image (as received at
    `incarnation`) was applied, so running it again (a crash, a redelivery) counts nothing."""
    return "stats:{stats}:done:" + _fingerprint("counted", f"{sha256}:{incarnation}:{step}")


# -- the web console ----------------------------------------------------------


def recent_images(shard: int) -> str:
    """Sorted set: SHA-256 -> time first received (Unix seconds), one piece of SHARDS (by
    `shard_of(sha256)`): merged, the newest-first listing, and oldest-first what retention erases."""
    return f"images:recent:{_shard_tag(shard)}"


def thumbnail(sha256: str, size: int) -> str:
    """String with a TTL: a JPEG of the upright image at most `size` pixels on a side."""
    return "thumb:{" + sha256 + "}:" + str(size)


# -- the names before hash tags and shards (read once by imagescan.migrate) -----

_HEX = "[0-9a-f]"
LEGACY_SPLIT_SETS = {"plates": "known plates", "images:recent": "recent images"}
LEGACY_CACHES = (f"^xform:{_HEX}{{64}}:", f"^thumb:{_HEX}{{64}}:", f"^erased:{_HEX}{{64}}$")
# The one face index: encodings (id -> 512 bytes) and owners (id -> SHA-256) first, then the
# id counter and the erasure log, which the partitions replace.
LEGACY_FACE_KEYS = ("face:enc", "face:owner", "face:seq", "face:erased:seq", "face:erased")


def legacy_renames():
    """(pattern of an old key name, the new name from the pattern's groups) for each key that
    keeps its value under a new name. The split sets and the caches are listed above."""
    return (
        (f"^img:({_HEX}{{64}})$", lambda sha: image(sha)),
        (f"^img:({_HEX}{{64}}):(names|faces|matches|jobs|alljobs)$", lambda sha, kind: f"{image(sha)}:{kind}"),
        (f"^alias:({_HEX}{{32}}|{_HEX}{{56}})$", digest_alias),
        ("^plate:fz:([0-9]+)$", lambda number: plate_fuzzy_bucket(int(number))),
        ("^plate:([^{:][^:]*)$", plate_images),
        ("^attempts:([a-z]+):([^{].*)$", work_attempts),
        ("^stats:uploads:([0-9-]{10})$", uploads_on_day),
        ("^stats:formats$", format_counts),
        ("^stats:cameras$", camera_counts),
    )
