"""Erasing an image and everything made from it, on request or by age (retention).

`erase` deletes the original and the jobs' rendered outputs from the blob store, then
removes, in one Redis transaction: the record, its names, its MD5/SHA-224 aliases,
the URLs that led to it, its plate index entries (and a plate from the known plates when no
other image shows it), its faces (encodings, owners, the faces list), its matches and the
matches other images hold to it, its cached transforms and thumbnails, its attempt counters,
its jobs (waiting and finished), its place in the retention index, and its share of the
statistics (upload day, format, camera).

Why nothing comes back
----------------------
The transaction WATCHes every key it read, so an analysis or a job that writes in between
makes it start again; once it commits, a tombstone (`keys.erased`, named by a one-way hash of
each digest, kept TOMBSTONE_SECONDS) is in place. The worker's writes are all scripts that
check first: the analysis is saved only while the record exists, faces are added only while
no tombstone exists, a match is stored only while both images hold faces, and a transform is
cached only while the record exists. A new upload of the same bytes clears the tombstone: it
is a new image. The faces themselves live in their face partition (imagescan.facestore), removed
before and after the transaction; every copy searching them drops them at its next catch-up.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis as redis_lib

from . import keys, topology, transforms
from .faceindex import erase_faces
from .imaging import camera_label
from .store import DONE, ImageStore

TOMBSTONE_SECONDS = 24 * 3600  # longer than any analysis can take
RETENTION_BATCH = 100  # images per retention transaction round
RETENTION_BATCHES_PER_PASS = 10  # a pass erases at most this many batches, then yields
_MAX_TRIES = 50

audit_log = logging.getLogger("imagescan.audit")

# KEYS: a counter. A missing counter (expired) stays missing instead of going to -1.
_DECREMENT_IF_PRESENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""

# KEYS: cache key, image record; ARGV: value, ttl
_SET_WHILE_STORED = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


class ErasureContended(RuntimeError):
    """The image kept changing under the erasure; retrying later finishes it."""


@dataclass
class Erased:
    """What an erasure removed: counts by kind (names, plates, faces, matches, jobs, blobs)."""

    sha256: str
    removed: dict[str, int] = field(default_factory=dict)


@dataclass
class _Plan:
    sha256: str
    record: dict
    face_ids: list[int]
    matched: list[str]
    job_ids: list[str]
    plates: list[str]
    url_keys: list[str] = field(default_factory=list)
    lone_plates: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _plan(pipe, sha256: str) -> _Plan | None:
    """Read (watching) everything to delete; queue nothing yet. None: no such image."""
    own = [keys.image(sha256), keys.image_names(sha256), keys.image_faces(sha256),
           keys.image_matches(sha256), keys.image_jobs(sha256), keys.image_job_history(sha256)]
    pipe.watch(*own)
    record = {_text(k): _text(v) for k, v in pipe.hgetall(keys.image(sha256)).items()}
    if not record:
        return None
    names = [_text(n) for n in pipe.zrange(keys.image_names(sha256), 0, -1)]
    face_ids = [face["id"] for face in json.loads(pipe.get(keys.image_faces(sha256)) or "[]")]
    matched = [_text(m) for m in pipe.zrange(keys.image_matches(sha256), 0, -1)]
    job_ids = sorted({_text(j) for j in pipe.smembers(keys.image_jobs(sha256))}
                     | {_text(j) for j in pipe.smembers(keys.image_job_history(sha256))})
    url_keys = [ImageStore.url_key(name) for name in names]
    analysis = json.loads(record.get("analysis") or "{}")
    plates = sorted({p["plate"] for p in analysis.get("plates", []) if p.get("plate")})
    more = [keys.job(j) for j in job_ids] + url_keys + [keys.plate_images(p) for p in plates]
    if more:
        pipe.watch(*own, *more)
    outputs = [_text(pipe.hget(keys.job(j), "output")) for j in job_ids]
    plan = _Plan(sha256, record, face_ids, matched, job_ids, plates)
    plan.url_keys = [k for k in url_keys if _text(pipe.get(k)) == sha256]
    plan.lone_plates = [p for p in plates if {_text(m) for m in pipe.smembers(keys.plate_images(p))} <= {sha256}]
    plan.blobs = [sha256] + sorted({o for o in outputs if o and o != sha256})
    plan.removed = {"names": len(names), "plates": len(plates), "faces": len(face_ids),
                    "matches": len(matched), "jobs": len(job_ids), "blobs": len(plan.blobs)}
    return plan


def _queue_deletion(pipe, plan: _Plan) -> None:
    sha256, record = plan.sha256, plan.record
    pipe.delete(keys.image(sha256), keys.image_names(sha256), keys.image_faces(sha256),
                keys.image_matches(sha256), keys.image_jobs(sha256), keys.image_job_history(sha256),
                *[keys.transform_cache(sha256, op) for op in transforms.OPERATIONS],
                *[keys.thumbnail(sha256, size) for size in transforms.THUMBNAIL_SIZES],
                *[keys.job(j) for j in plan.job_ids], *plan.url_keys,
                keys.work_attempts(topology.ANALYZE, sha256),
                *[keys.work_attempts(topology.RENDER, j) for j in plan.job_ids])
    aliases = [record[kind] for kind in ("md5", "sha224") if record.get(kind)]
    if aliases:
        pipe.delete(*[keys.digest_alias(digest) for digest in aliases])
    pipe.zrem(keys.recent_images(), sha256)
    for other in plan.matched:
        pipe.zrem(keys.image_matches(other), sha256)
    for plate in plan.plates:
        pipe.srem(keys.plate_images(plate), sha256)
    if plan.lone_plates:
        pipe.srem(keys.known_plates(), *plan.lone_plates)
    _queue_stats_removal(pipe, record)
    for digest in [sha256, *aliases]:
        pipe.set(keys.erased(digest), "1", ex=TOMBSTONE_SECONDS)


def _queue_stats_removal(pipe, record: dict) -> None:
    """Take the image's share out of the statistics, as if it had never been uploaded."""
    if record.get("received_at"):
        pipe.eval(_DECREMENT_IF_PRESENT, 1, keys.uploads_on_day(record["received_at"][:10]))
    if record.get("status") != DONE:
        return  # counted by format and camera only once analysed
    camera = json.loads(record.get("analysis") or "{}").get("exif") or {}
    for counts, member in ((keys.format_counts(), record.get("format")),
                           (keys.camera_counts(), camera_label(camera))):
        if member:
            pipe.zincrby(counts, -1, member)
            pipe.zremrangebyscore(counts, "-inf", 0)


def erase(store: ImageStore, blobs, sha256: str, *, who: str, reason: str = "request") -> Erased | None:
    """Erase one image (by SHA-256) everywhere; None when there is no such image."""
    deleted: set[str] = set()
    for _ in range(_MAX_TRIES):
        with store.redis.pipeline(transaction=True) as pipe:
            try:
                plan = _plan(pipe, sha256)
                if plan is None:
                    return None
                # Bytes first: if the blob store fails, the record is still there and a
                # retried DELETE finds everything again.
                for blob in set(plan.blobs) - deleted:
                    blobs.delete(blob)
                    deleted.add(blob)
                erase_faces(store.redis, sha256)  # before too: a retried DELETE must find them
                pipe.multi()
                _queue_deletion(pipe, plan)
                pipe.execute()
                break
            except redis_lib.WatchError:
                time.sleep(0.01)  # an analysis or job wrote meanwhile: read again
    else:
        raise ErasureContended(f"image {sha256} kept changing during its erasure")
    erase_faces(store.redis, sha256)  # any stored while the tombstone went in (the worker removes them too)
    audit_log.info("erased image %s (%s) by %s", sha256, reason, who,
                   extra={"audit": "erased", "who": who, "sha256": sha256, "reason": reason,
                          "at": _now_iso(), "removed": plan.removed})
    return Erased(sha256, plan.removed)


def recently_erased(redis, digest: str) -> bool:
    """True while the tombstone of an image erased under this digest is kept."""
    return bool(redis.exists(keys.erased(digest)))


def set_while_stored(redis, key: str, sha256: str, value: bytes, ttl_seconds: int) -> bool:
    """SET key (with a TTL) only while the image is stored: a cache filled from an image being
    erased must not outlive it."""
    return bool(redis.eval(_SET_WHILE_STORED, 2, key, keys.image(sha256), value, ttl_seconds))


# -- retention -------------------------------------------------------------------


def expired_images(redis, max_age_days: int, *, now: float | None = None, limit: int = RETENTION_BATCH) -> list[str]:
    """SHA-256 of (at most `limit`) images received more than max_age_days ago, oldest first."""
    cutoff = (time.time() if now is None else now) - max_age_days * 86400
    return [_text(s) for s in redis.zrangebyscore(keys.recent_images(), "-inf", f"({cutoff}", start=0, num=limit)]


def erase_expired(store: ImageStore, blobs, max_age_days: int, *, now: float | None = None,
                  batch: int = RETENTION_BATCH, batches: int = RETENTION_BATCHES_PER_PASS) -> int:
    """Erase up to batch * batches images past their age; returns how many were erased."""
    erased = 0
    for _ in range(batches):
        due = expired_images(store.redis, max_age_days, now=now, limit=batch)
        for sha256 in due:
            if erase(store, blobs, sha256, who="retention", reason=f"older than {max_age_days} days"):
                erased += 1
            else:
                store.redis.zrem(keys.recent_images(), sha256)  # a stale entry: nothing to erase
        if len(due) < batch:
            break
    return erased


def retention_pass(store: ImageStore, blobs, max_age_days: int, interval_seconds: float, holder: str) -> int | None:
    """One pass, unless another process ran one within interval_seconds (None then).

    The lock is never released, it expires: with any number of workers, passes run at most
    once per interval, and a pass that dies leaves nothing to clean up.
    """
    if not store.redis.set(keys.retention_lock(), holder, nx=True, px=int(interval_seconds * 1000)):
        return None
    return erase_expired(store, blobs, max_age_days)
