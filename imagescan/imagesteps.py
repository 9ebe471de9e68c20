"""The steps that put an image in the indexes kept outside its record, and take it out again.

An image's own keys share one hash slot (imagescan.keys), so its record is written by one
script. What points at an image from elsewhere cannot be in that slot: its MD5/SHA-224 aliases,
the erasure tombstones of its digests, its place in the newest-first listing, its plates'
image sets and the known plates, the fuzzy plate index, the statistics. On a cluster each of
those is a step of its own, and a process can die between two steps. The order makes that
harmless:

1. The record's script writes the record AND a flag naming what is still to do (`unlisted`
   after an upload, `plates_pending` before an analysis is saved, `uncounted` after). The
   flag and the record change together, so the record always says what may be missing.
2. Every step is idempotent: SET, SADD, ZADD NX, DEL, a counting step applied once
   (imagescan.stats).
3. The flag is cleared last, by a step that also tells whether the record still exists; if it
   was erased meanwhile, what the steps added is taken out again.

Whoever meets a flag finishes the steps (`complete_pending`): the upload retried by its client
(the first attempt never answered), the worker that takes the image (`mark_processing`), the
redelivered analysis, the erasure (which finishes them before undoing them all). A reader
between two steps sees at worst an image not reachable yet by its MD5 or not listed yet, never
an entry pointing at nothing it cannot skip: listings and plate searches read the record and
skip an image whose record is gone. On one Redis the same steps run, one after the other.
"""

from __future__ import annotations

import json

from . import keys, recent, stats
from .imaging import camera_label
from .plateindex import file_image, unfile_image
from .redisclient import is_cluster, reply_text, run_script

UNLISTED, PLATES_PENDING, UNCOUNTED = "unlisted", "plates_pending", "uncounted"
PENDING_FIELDS = (UNLISTED, PLATES_PENDING, UNCOUNTED)
_RECORD_FIELDS = ("md5", "sha224", "ts", "received_at", "status", "format", "camera")

# KEYS: record; ARGV: flag. Returns 1 when the record is still there (its flag now cleared).
_CLEAR_FLAG = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

# KEYS: a key pointing at an image; ARGV: the image's SHA-256. Deleted only while it points there.
_DELETE_IF_POINTING = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def clear_flag(client, sha256: str, flag: str) -> bool:
    """Clear a done step's flag; False when the record is gone (erased meanwhile)."""
    return bool(run_script(client, _CLEAR_FLAG, [keys.image(sha256)], [flag]))


def delete_if_pointing(client, key: str, sha256: str) -> None:
    run_script(client, _DELETE_IF_POINTING, [key], [sha256])


def incarnation(record: dict) -> str:
    """What tells this record from an earlier one of the same bytes (erased, then sent again)."""
    return record.get("ts") or record.get("received_at") or ""


def analysis_plates(record: dict) -> list[str]:
    """The plates an analysis indexed, or is indexing (`plates_pending`)."""
    plates = {p["plate"] for p in json.loads(record.get("analysis") or "{}").get("plates", []) if p.get("plate")}
    return sorted(plates | {p for p in record.get(PLATES_PENDING, "").split(",") if p})


def camera_of(record: dict) -> str:
    if record.get("camera") is not None:
        return record["camera"]
    return camera_label(json.loads(record.get("analysis") or "{}").get("exif") or {}) or ""


def read_record(client, sha256: str) -> dict:
    """The fields of the record the steps need ({} when there is no record)."""
    fields = (*_RECORD_FIELDS, *PENDING_FIELDS)
    values = client.hmget(keys.image(sha256), fields)
    if values[fields.index("status")] is None:
        return {}
    return {name: reply_text(value) for name, value in zip(fields, values) if value is not None}


# -- listing: aliases, tombstones, newest-first listing, upload counter --------


def queue_listing(pipe, sha256: str, record: dict) -> None:
    """The steps after an upload created the record, queued: each idempotent, in any order."""
    digests = [d for d in (record.get("md5"), record.get("sha224")) if d]
    for digest in (sha256, *digests):  # a new upload of erased bytes is a new image
        pipe.delete(keys.erased(digest))
    for digest in digests:
        pipe.set(keys.digest_alias(digest), sha256)
    recent.add(pipe, sha256, float(record.get("ts") or 0))
    stats.count_upload(pipe, sha256, incarnation(record), record.get("received_at", "")[:10])


def list_image(client, sha256: str, record: dict) -> None:
    """The listing steps, then the `unlisted` flag cleared. One Redis runs a pipeline in order,
    so the flag goes in the same round trip; a cluster pipeline runs on several nodes at once,
    so there the flag waits for the steps' answers."""
    together = not is_cluster(client)
    with client.pipeline(transaction=False) as pipe:
        queue_listing(pipe, sha256, record)
        if together:
            run_script(pipe, _CLEAR_FLAG, [keys.image(sha256)], [UNLISTED])
        replies = pipe.execute()
    still_there = replies[-1] if together else clear_flag(client, sha256, UNLISTED)
    if not still_there:
        unlist_image(client, sha256, record)  # erased while these steps ran


def unlist_image(client, sha256: str, record: dict) -> None:
    """Take the image out of what `list_image` put it in (idempotent; tombstones stay)."""
    for digest in (record.get("md5"), record.get("sha224")):
        if digest:
            delete_if_pointing(client, keys.digest_alias(digest), sha256)
    recent.remove(client, sha256)


# -- plates and the analysis statistics ----------------------------------------


def file_plates(client, plate_index, sha256: str, plates: list[str]) -> None:
    """Each plate's image set, the known plates and the fuzzy index (idempotent, any order)."""
    if not plates:
        return
    with client.pipeline(transaction=False) as pipe:
        queue_plates(pipe, plate_index, sha256, plates)
        pipe.execute()


def queue_plates(pipe, plate_index, sha256: str, plates: list[str]) -> None:
    for plate in plates:
        file_image(pipe, sha256, plate)
    plate_index.add(plates, client=pipe)


def unfile_plates(client, sha256: str, plates: list[str]) -> None:
    for plate in plates:
        unfile_image(client, sha256, plate)


def count_analysis(client, sha256: str, record: dict) -> None:
    """The format and camera counted (once), then the `uncounted` flag cleared: in one round
    trip on one Redis (a pipeline runs in order there), one after the other on a cluster."""
    if is_cluster(client):
        stats.count_analysis(client, sha256, incarnation(record), record.get("format", ""), camera_of(record))
        clear_flag(client, sha256, UNCOUNTED)
        return
    with client.pipeline(transaction=False) as pipe:
        stats.count_analysis(pipe, sha256, incarnation(record), record.get("format", ""), camera_of(record))
        run_script(pipe, _CLEAR_FLAG, [keys.image(sha256)], [UNCOUNTED])
        pipe.execute()


def complete_pending(client, sha256: str, record: dict | None = None) -> dict:
    """Finish the listing and counting steps the record's flags say are missing; returns the
    record read. (`plates_pending` is finished by the analysis saved again, or undone by erasure.)"""
    record = read_record(client, sha256) if record is None else record
    if record.get(UNLISTED):
        list_image(client, sha256, record)
    if record.get(UNCOUNTED):
        count_analysis(client, sha256, record)
    return record
