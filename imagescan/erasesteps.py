"""The steps of an erasure outside the image's slot, from its journal (imagescan.erasure
explains the order). Apart, so that an upload of the same bytes meeting an unfinished erasure
can finish it first (imagescan.store) without the store depending on the erasure module.
"""

from __future__ import annotations

from . import imagesteps, keys, stats, topology
from .faceindex import erase_faces
from .redisclient import reply_text


def split(text: str) -> list[str]:
    return [item for item in (text or "").split(",") if item]


def journal_of(client, sha256: str) -> dict:
    """The journal of an unfinished erasure of this image ({}: none)."""
    return {reply_text(k): reply_text(v) for k, v in client.hgetall(keys.image_erasure(sha256)).items()}


def unfinished(client, digest: str) -> str | None:
    """The SHA-256 of an image whose erasure was cut short (its record gone, its journal not)."""
    digest = digest.lower()
    return digest if len(digest) == 64 and client.exists(keys.image_erasure(digest)) else None


def finish(client, sha256: str) -> bool:
    """Finish an erasure cut short; False when there was none."""
    journal = journal_of(client, sha256)
    if journal:
        remove_elsewhere(client, sha256, journal)
    return bool(journal)


def remove_elsewhere(client, sha256: str, journal: dict) -> None:
    """Step 4: what points at the image from other slots, each step idempotent."""
    # By owner, not by the journal's ids: also faces a worker stored while the tombstone went
    # in (it removes them itself too, and every copy searching them drops them on catch-up).
    erase_faces(client, sha256)
    for other in split(journal.get("matched")):
        client.zrem(keys.image_matches(other), sha256)
    imagesteps.unfile_plates(client, sha256, split(journal.get("plates")))
    for job_id in split(journal.get("jobs")):
        client.delete(keys.job(job_id))
        client.delete(keys.work_attempts(topology.RENDER, job_id))
    for url_key in split(journal.get("urls")):
        imagesteps.delete_if_pointing(client, url_key, sha256)
    _remove_from_stats(client, sha256, journal)
    imagesteps.unlist_image(client, sha256, journal)  # aliases and listing last: how a retry finds it
    client.delete(keys.image_erasure(sha256))


def _remove_from_stats(client, sha256: str, journal: dict) -> None:
    """Take the image's share out of the statistics, as if it had never been uploaded. A count
    its record still had flagged as pending is made first (once), so the two cancel out."""
    incarnation = imagesteps.incarnation(journal)
    day = journal.get("received_at", "")[:10]
    analysed = journal.get("status") == "done"
    if journal.get(imagesteps.UNLISTED):
        stats.count_upload(client, sha256, incarnation, day)
    if analysed and journal.get(imagesteps.UNCOUNTED):
        stats.count_analysis(client, sha256, incarnation, journal.get("format", ""), journal.get("camera"))
    stats.uncount(client, sha256, incarnation, day, journal.get("format") if analysed else None,
                  journal.get("camera") if analysed else None)
