"""The newest-first listing of images, read page by page with an opaque cursor.

The index (`keys.recent_images`) holds every image from its first upload on, scored by the
time it was first received. A cursor names the last image of a page (its score and SHA-256),
so pages stay stable while new images arrive at the top: nothing is shown twice or skipped.

The index is split in `keys.SHARDS` pieces by SHA-256 (one key would hold every image on one
node of a cluster). A page reads the next `limit + 1` of every piece and merges them: the same
order as one sorted set's (score, then SHA-256, both descending).
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


def _merged(replies, newest_first: bool) -> list[tuple[str, float]]:
    rows = [(_text(member), score) for reply in replies for member, score in reply]
    return sorted(rows, key=lambda row: (row[1], row[0]), reverse=newest_first)


def add(client, sha256: str, score: float) -> None:
    """List an image (idempotent: a second call keeps the first time)."""
    client.zadd(keys.recent_images(keys.shard_of(sha256)), {sha256: score}, nx=True)


def remove(client, sha256: str) -> None:
    client.zrem(keys.recent_images(keys.shard_of(sha256)), sha256)


def _newest(client: redis.Redis, cursor: str | None, limit: int) -> list[tuple[str, float]]:
    """Up to limit + 1 (sha256, score) pairs after the cursor, newest first."""
    score, last = decode_cursor(cursor) if cursor is not None else (None, None)
    with client.pipeline(transaction=False) as pipe:
        for shard in range(keys.SHARDS):
            if score is None:
                pipe.zrevrange(keys.recent_images(shard), 0, limit, withscores=True)
            else:
                pipe.zrevrangebyscore(keys.recent_images(shard), score, "-inf", start=0,
                                      num=limit + 1 + _TIE_ALLOWANCE, withscores=True)
        rows = _merged(pipe.execute(), newest_first=True)
    if score is None:
        return rows[: limit + 1]
    # Members of equal score come in reverse lexical order: those up to the cursor were shown.
    after = [(m, s) for m, s in rows if s < score or (s == score and m < last)]
    return after[: limit + 1]


def oldest(client, before: float, limit: int) -> list[str]:
    """SHA-256 of (at most `limit`) images received before `before` (Unix seconds), oldest first."""
    with client.pipeline(transaction=False) as pipe:
        for shard in range(keys.SHARDS):
            pipe.zrangebyscore(keys.recent_images(shard), "-inf", f"({before}", start=0, num=limit, withscores=True)
        return [sha256 for sha256, _ in _merged(pipe.execute(), newest_first=False)[:limit]]


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
