"""Erasing an image and everything made from it, on request or by age (retention).

`erase` deletes the original and the jobs' rendered outputs from the blob store, then removes
the record, its names, its MD5/SHA-224 aliases, the URLs that led to it, its plate index
entries (and a plate from the known plates when no other image shows it), its faces
(the records in its face partition, the faces list), its matches and the matches other images hold to it, its
cached transforms and thumbnails, its attempt counters, its jobs (waiting and finished), its
place in the retention index, and its share of the statistics (upload day, format, camera).

In which order, and why nothing comes back
------------------------------------------
The image's own keys share one hash slot; the rest is elsewhere (on a cluster, on other
nodes). So an erasure is a few single-slot steps:

1. Blobs first: if the blob store fails, the record is still there and a retried DELETE
   finds everything again.
2. Tombstones (`keys.erased`, named by a one-way hash of each digest, kept TOMBSTONE_SECONDS):
   from now on the worker adds no faces to the image.
3. One transaction in the image's slot, WATCHing every own key it read (an analysis or a job
   that writes in between makes it start again): it deletes the record and the image's own
   keys, and writes in their place a journal (`keys.image_erasure`) of what the next steps
   must remove elsewhere. From here on the image is gone for every reader: whatever still
   points at it (an alias, a plate set, the listing) leads to no record, and every reader
   skips what leads to no record.
4. The steps outside the slot, from the journal, each idempotent; then the journal goes.
   A crash in between leaves the journal: a retried DELETE (any digest: the aliases go among
   the last), the retention pass (the listing entry goes last but one), or an upload of the
   same bytes (before it makes a new record) finishes it.

The worker's writes are all scripts that check first: the analysis is saved only while the
record exists (plates it filed meanwhile are unfiled again), faces are added only while no
tombstone exists, a match is stored only while both images hold faces, and a transform is
cached only while the record exists. A new upload of the same bytes clears the tombstone: it
is a new image. The faces are removed from their partition by owner (imagescan.facestore logs
their ids), and every copy searching them, in a worker or a face-search shard, drops them at
its next catch-up; a face a worker stored while the tombstone went in is removed again by that
worker (imagescan.faceindex checks the tombstone after writing).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis as redis_lib

from . import erasesteps, imagesteps, keys, recent, topology, transforms
from .redisclient import reply_text
from .store import ImageStore

TOMBSTONE_SECONDS = 24 * 3600  # longer than any analysis can take
RETENTION_BATCH = 100  # images per retention transaction round
RETENTION_BATCHES_PER_PASS = 10  # a pass erases at most this many batches, then yields
_MAX_TRIES = 50

audit_log = logging.getLogger("imagescan.audit")

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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _joined(items) -> str:
    return ",".join(str(item) for item in items)


def _own_keys(sha256: str) -> list[str]:
    """Every key of the image's own slot that an erasure deletes."""
    return [keys.image(sha256), keys.image_names(sha256), keys.image_faces(sha256),
            keys.image_matches(sha256), keys.image_jobs(sha256), keys.image_job_history(sha256),
            *[keys.transform_cache(sha256, op) for op in transforms.OPERATIONS],
            *[keys.thumbnail(sha256, size) for size in transforms.THUMBNAIL_SIZES],
            keys.work_attempts(topology.ANALYZE, sha256)]


def _plan(pipe, client, sha256: str) -> dict | None:
    """The journal of the erasure: read (watching the image's own keys) from the image's slot,
    the job outputs and the URLs from elsewhere. None: no such image."""
    own = _own_keys(sha256)[:6]
    pipe.watch(*own)
    record = {reply_text(k): reply_text(v) for k, v in pipe.hgetall(keys.image(sha256)).items()}
    if not record:
        return None
    names = [reply_text(n) for n in pipe.zrange(keys.image_names(sha256), 0, -1)]
    faces = [face["id"] for face in json.loads(pipe.get(keys.image_faces(sha256)) or "[]") if "id" in face]
    matched = [reply_text(m) for m in pipe.zrange(keys.image_matches(sha256), 0, -1)]
    job_ids = sorted({reply_text(j) for j in pipe.smembers(keys.image_jobs(sha256))}
                     | {reply_text(j) for j in pipe.smembers(keys.image_job_history(sha256))})
    outputs = [reply_text(client.hget(keys.job(j), "output")) for j in job_ids]
    urls = [ImageStore.url_key(name) for name in names]
    fields = ("md5", "sha224", "ts", "received_at", "status", "format",
              imagesteps.UNLISTED, imagesteps.UNCOUNTED)
    return {**{f: record[f] for f in fields if record.get(f)},
            "camera": imagesteps.camera_of(record), "plates": _joined(imagesteps.analysis_plates(record)),
            "faces": _joined(faces), "matched": _joined(matched), "jobs": _joined(job_ids),
            "urls": _joined(u for u in urls if reply_text(client.get(u)) == sha256),
            "blobs": _joined([sha256] + sorted({o for o in outputs if o and o != sha256})),
            "names": str(len(names))}


def removed_counts(journal: dict) -> dict[str, int]:
    return {"names": int(journal.get("names") or 0), "plates": len(erasesteps.split(journal.get("plates"))),
            "faces": len(erasesteps.split(journal.get("faces"))), "matches": len(erasesteps.split(journal.get("matched"))),
            "jobs": len(erasesteps.split(journal.get("jobs"))), "blobs": len(erasesteps.split(journal.get("blobs")))}


def _delete_record(store: ImageStore, blobs, sha256: str) -> dict | None:
    """Steps 1-3 (see the module's docstring); the journal written, or None: no such image."""
    deleted: set[str] = set()
    for _ in range(_MAX_TRIES):
        with store.redis.pipeline(transaction=True) as pipe:
            try:
                journal = _plan(pipe, store.redis, sha256)
                if journal is None:
                    return None
                for blob in set(erasesteps.split(journal["blobs"])) - deleted:
                    blobs.delete(blob)
                    deleted.add(blob)
                for digest in (sha256, journal.get("md5"), journal.get("sha224")):
                    if digest:
                        store.redis.set(keys.erased(digest), "1", ex=TOMBSTONE_SECONDS)
                pipe.multi()
                pipe.hset(keys.image_erasure(sha256), mapping=journal)
                pipe.delete(*_own_keys(sha256))
                pipe.execute()
                return journal
            except redis_lib.WatchError:
                time.sleep(0.01)  # an analysis or job wrote meanwhile: read again
    raise ErasureContended(f"image {sha256} kept changing during its erasure")


def unfinished(redis, digest: str) -> str | None:
    """The SHA-256 of an image whose erasure was cut short (its record gone, its journal not)."""
    return erasesteps.unfinished(redis, digest)


def erase(store: ImageStore, blobs, sha256: str, *, who: str, reason: str = "request") -> Erased | None:
    """Erase one image (by SHA-256) everywhere, or finish its cut-short erasure; None when
    there is no such image."""
    journal = erasesteps.journal_of(store.redis, sha256) or _delete_record(store, blobs, sha256)
    if not journal:
        return None
    erasesteps.remove_elsewhere(store.redis, sha256, journal)
    removed = removed_counts(journal)
    audit_log.info("erased image %s (%s) by %s", sha256, reason, who,
                   extra={"audit": "erased", "who": who, "sha256": sha256, "reason": reason,
                          "at": _now_iso(), "removed": removed})
    return Erased(sha256, removed)


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
    return recent.oldest(redis, cutoff, limit)


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
                recent.remove(store.redis, sha256)  # a stale entry: nothing to erase
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
