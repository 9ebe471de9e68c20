"""The statistics kept at ingest: images per upload day, per format, per camera.

The counters share one hash slot (`{stats}`, see imagescan.keys), apart from the images they
count. Counting an image is therefore a step of its own, after the image's record says what to
count, and a step can run twice: a process dies after counting but before the record notes it,
and the next delivery counts again. So every step is named (the image, the incarnation of its
record, what the step does) and applied at most once: the script that applies it first sets a
marker beside the counters (`keys.stats_step_done`, kept STEP_MARKER_SECONDS), in the same
atomic step, and does nothing when the marker is there already.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from . import keys
from .redisclient import run_script

STATS_DAYS_KEPT = 40  # per-day upload counters outlive the 30 days the stats report
STEP_MARKER_SECONDS = 24 * 3600  # longer than a message is redelivered or an upload retried

# KEYS: step marker, upload-day counter, format counts, camera counts (all in the stats slot)
# ARGV: marker ttl, delta (1 or -1), day counter ttl ("": not counted by day), format, camera
#       ("": not counted). A counter going down never goes below zero nor comes back expired.
_APPLY_ONCE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local delta = tonumber(ARGV[2])
if ARGV[3] ~= '' then
  if delta > 0 then
    redis.call('INCRBY', KEYS[2], delta)
    redis.call('EXPIRE', KEYS[2], ARGV[3])
  elseif tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
    redis.call('INCRBY', KEYS[2], delta)
  end
end
for i = 3, 4 do
  if ARGV[i + 1] ~= '' then
    redis.call('ZINCRBY', KEYS[i], delta, ARGV[i + 1])
    if delta < 0 then redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', 0) end
  end
end
return 1
"""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _apply_once(client, sha256: str, incarnation: str, step: str, delta: int, *,
                day: str = "", format: str = "", camera: str = ""):
    """Queued, when `client` is a pipeline (then the answer is the pipeline's)."""
    return run_script(
        client, _APPLY_ONCE,
        [keys.stats_step_done(sha256, incarnation, step), keys.uploads_on_day(day or "-"),
         keys.format_counts(), keys.camera_counts()],
        [STEP_MARKER_SECONDS, delta, STATS_DAYS_KEPT * 86400 if day else "", format or "", camera or ""],
    )


def count_upload(client, sha256: str, incarnation: str, day: str):
    """One more image first received on `day` (YYYY-MM-DD), once per incarnation."""
    return _apply_once(client, sha256, incarnation, "uploaded", 1, day=day)


def count_analysis(client, sha256: str, incarnation: str, format: str, camera: str | None):
    """One more image of this format and camera, once per incarnation."""
    return _apply_once(client, sha256, incarnation, "analysed", 1, format=format, camera=camera or "")


def uncount(client, sha256: str, incarnation: str, day: str, format: str | None, camera: str | None):
    """Take an erased image's share out, as if it had never been uploaded (once)."""
    return _apply_once(client, sha256, incarnation, "erased", -1, day=day, format=format or "",
                       camera=camera or "")


def uploads_per_day(client, days: int = 30, today: datetime | None = None) -> dict[str, int]:
    """UTC day -> images first received that day, for the last `days` days with uploads."""
    today = (today or datetime.now(UTC)).date()
    dates = [(today - timedelta(days=offset)).isoformat() for offset in range(days)]
    counts = client.mget([keys.uploads_on_day(d) for d in dates])  # one slot: one MGET
    return {d: int(c) for d, c in sorted(zip(dates, counts)) if c}


def top(client, counts_key: str, n: int) -> list[tuple[str, int]]:
    return [(_text(m), int(c)) for m, c in client.zrevrange(counts_key, 0, n - 1, withscores=True)]
