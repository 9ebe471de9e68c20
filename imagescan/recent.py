"""The newest-first listing of images, read page by page with an opaque cursor.

The index (`keys.recent_images`) holds every image from its first upload on, scored by the
time it was first received. A cursor names the last image of a page (its score and SHA-256),
so pages stay stable while new images arrive at the top: nothing is shown twice or skipped.
"""

from __future__ import annotations

import json
import re

import redis

from . import keys

_CURSOR = re.compile(r"^(\d{1,12}(?:\.\d{1,17})?)_([0-9a-f]{64})$")
# Images sharing the cursor's score are re-read and skipped; more than this many images
# received in the same microsecond is not something an upload path can produce.
_TIE_ALLOWANCE = 64


class BadCursor(ValueError):
    """The cursor is not one this listing handed out."""


def encode_cursor(score: float, sha256: str) -> str:
    # repr: the shortest text that reads back as the very same float Redis holds.
    return f"{float(score)!r}_{sha256}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    matched = _CURSOR.match(cursor)
    if not matched:
        raise BadCursor("the cursor is malformed; use the `next` value of the previous page")
    return float(matched.group(1)), matched.group(2)


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _newest(client: redis.Redis, cursor: str | None, limit: int) -> list[tuple[str, float]]:
    """Up to limit + 1 (sha256, score) pairs after the cursor, newest first."""
    if cursor is None:
        rows = client.zrevrange(keys.recent_images(), 0, limit, withscores=True)
        return [(_text(member), score) for member, score in rows]
    score, last = decode_cursor(cursor)
    rows = client.zrevrangebyscore(keys.recent_images(), score, "-inf", start=0,
                                   num=limit + 1 + _TIE_ALLOWANCE, withscores=True)
    # Members of equal score come in reverse lexical order: those up to the cursor were shown.
    after = [(_text(m), s) for m, s in rows if s < score or (s == score and _text(m) < last)]
    return after[: limit + 1]


def summarize(record: dict, names: list[str], sha256: str) -> dict:
    """What a list row shows of an image: names, status, plates, how many faces."""
    record = {_text(k): _text(v) for k, v in record.items()}
    results = json.loads(record.get("analysis") or "{}")
    summary = {
        "sha256": sha256,
        "md5": record.get("md5"),
        "names": names,
        "status": record.get("status"),
        "received_at": record.get("received_at"),
        "format": record.get("format"),
        "plates": [{"plate": p.get("plate"), "confidence": p.get("confidence")}
                   for p in results.get("plates", [])],
        "faces": len(results.get("faces", [])),
    }
    if record.get("error"):
        summary["error"] = record["error"]
    return summary


def page(client: redis.Redis, cursor: str | None, limit: int) -> dict:
    """`{"images": [summary...], "next": cursor or None}`, newest first."""
    listed = _newest(client, cursor, limit)
    shown = listed[:limit]
    with client.pipeline(transaction=False) as pipe:
        for sha256, _ in shown:
            pipe.hgetall(keys.image(sha256))
            pipe.zrange(keys.image_names(sha256), 0, -1)
        replies = pipe.execute()
    images = [summarize(record, [_text(n) for n in names], sha256)
              for (sha256, _), record, names in zip(shown, replies[::2], replies[1::2]) if record]
    more = len(listed) > limit
    return {"images": images, "next": encode_cursor(shown[-1][1], shown[-1][0]) if more else None}
