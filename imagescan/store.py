"""ImageStore: every read and write of image records and their indexes in Redis.

Writes that touch several keys for one image run as one Lua script, so a reader never
sees half an image (a status of `done` without its plates, an alias without its record).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import redis
import redis.sentinel

from . import keys
from .blobs import open_blob_store
from .config import Settings
from .digests import Digests, digest_kind
from .plateindex import PlateIndex
from .platetext import normalize_plate

QUEUED, PROCESSING, DONE, FAILED = "queued", "processing", "done", "failed"
NAMES_SHOWN = 50  # names of one image in a listing: the most recent ones (page the rest)
STATS_DAYS_KEPT = 40  # per-day upload counters outlive the 30 days the stats report

# KEYS: record, names, md5 alias, sha224 alias, today's upload counter, recent images (the
#       newest-first listing, also read by retention), the erasure tombstones of the three digests
# ARGV: sha256, md5, sha224, size, received_at, name score (Unix seconds), name ("" for none),
#       counter ttl
_REGISTER = """
local created = redis.call('HSETNX', KEYS[1], 'sha256', ARGV[1])
if created == 1 then
  redis.call('HSET', KEYS[1], 'md5', ARGV[2], 'sha224', ARGV[3], 'size', ARGV[4],
             'received_at', ARGV[5], 'status', 'queued')
  redis.call('SET', KEYS[3], ARGV[1])
  redis.call('SET', KEYS[4], ARGV[1])
  redis.call('INCR', KEYS[5])
  redis.call('EXPIRE', KEYS[5], ARGV[8])
  redis.call('ZADD', KEYS[6], ARGV[6], ARGV[1])
  redis.call('DEL', KEYS[7], KEYS[8], KEYS[9])  -- sent again after an erasure: a new image
end
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[6], ARGV[7])
end
return {created, redis.call('HGET', KEYS[1], 'status')}
"""

# KEYS: record, format counts, camera counts, known plates, plate index keys...
# ARGV: sha256, analysis json, format, width, height, analyzed_at, camera label, plates...
_SAVE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == false then return -1 end
if status == 'done' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'done', 'analysis', ARGV[2], 'format', ARGV[3],
           'width', ARGV[4], 'height', ARGV[5], 'analyzed_at', ARGV[6])
redis.call('HDEL', KEYS[1], 'error')
redis.call('ZINCRBY', KEYS[2], 1, ARGV[3])
if ARGV[7] ~= '' then redis.call('ZINCRBY', KEYS[3], 1, ARGV[7]) end
for i = 5, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[i + 3])
end
return 1
"""

# KEYS: record; ARGV: new status, error ("" for none), at
# Moves queued/processing/failed forward; a finished analysis is never overwritten.
_SET_STATUS = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == false then return false end
if status == 'done' then return status end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updated_at', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[2]) end
return status
"""


def connect_redis(settings: Settings) -> redis.Redis:
    options = {
        "db": settings.redis_db,
        "password": settings.redis_password or None,
        "socket_timeout": settings.network_timeout,
        "socket_connect_timeout": settings.network_timeout,
        "health_check_interval": 30,
        "retry_on_timeout": False,
    }
    if settings.redis_sentinels:
        # Every new connection asks the Sentinels for the current master, so after a failover
        # the client follows the promoted replica; a connection to a demoted master fails
        # (READONLY) and is replaced.
        sentinel = redis.sentinel.Sentinel(
            list(settings.redis_sentinels),
            socket_timeout=settings.network_timeout,
            socket_connect_timeout=settings.network_timeout,
        )
        return sentinel.master_for(settings.redis_sentinel_master, **options)
    return redis.Redis(host=settings.redis_host, port=settings.redis_port, **options)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class ImageStore:
    def __init__(self, client: redis.Redis):
        self.redis = client
        self._register = client.register_script(_REGISTER)
        self._save = client.register_script(_SAVE)
        self._set_status = client.register_script(_SET_STATUS)
        self.plate_index = PlateIndex(client)

    # -- lookups ---------------------------------------------------------------

    def resolve(self, digest: str) -> str | None:
        """SHA-256 of the image known by this MD5, SHA-224 or SHA-256, or None."""
        kind = digest_kind(digest)
        if kind is None:
            return None
        digest = digest.lower()
        if kind == "sha256":
            return digest if self.redis.exists(keys.image(digest)) else None
        return _text(self.redis.get(keys.digest_alias(digest)))

    def status(self, sha256: str) -> str | None:
        return _text(self.redis.hget(keys.image(sha256), "status"))

    def names(self, sha256: str, limit: int = NAMES_SHOWN) -> list[str]:
        """The image's `limit` most recent names, first seen first."""
        return [_text(n) for n in self.redis.zrange(keys.image_names(sha256), -limit, -1)]

    def names_of_each(self, sha256s: list[str], limit: int = NAMES_SHOWN) -> list[list[str]]:
        """`names` of several images in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for sha in sha256s:
                pipe.zrange(keys.image_names(sha), -limit, -1)
            return [[_text(n) for n in names] for names in pipe.execute()] if sha256s else []

    def names_page(self, sha256: str, offset: int, limit: int) -> tuple[list[str], int]:
        """(names from `offset` in first-seen order, how many names there are in all)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(keys.image_names(sha256), offset, offset + limit - 1)
            pipe.zcard(keys.image_names(sha256))
            names, total = pipe.execute()
        return [_text(n) for n in names], int(total)

    def digests(self, sha256: str) -> Digests | None:
        md5, sha224 = self.redis.hmget(keys.image(sha256), "md5", "sha224")
        if md5 is None:
            return None
        return Digests(md5=_text(md5), sha224=_text(sha224), sha256=sha256)

    def analysis(self, sha256: str) -> dict | None:
        """The whole `/images/<digest>` document, or None for an unknown image."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.image(sha256))
            pipe.zrange(keys.image_names(sha256), -NAMES_SHOWN, -1)
            pipe.zcard(keys.image_names(sha256))
            record, names, names_total = pipe.execute()
        if not record:
            return None
        record = {_text(k): _text(v) for k, v in record.items()}
        results = json.loads(record.get("analysis") or "{}")
        document = {
            "status": record.get("status"),
            "digests": {"md5": record.get("md5"), "sha224": record.get("sha224"), "sha256": sha256},
            "names": [_text(n) for n in names],
            "names_total": int(names_total),
            "size": int(record.get("size", 0)),
            "received_at": record.get("received_at"),
            "analyzed_at": record.get("analyzed_at"),
            "format": record.get("format"),
            "width": int(record["width"]) if record.get("width") else None,
            "height": int(record["height"]) if record.get("height") else None,
            "exif": results.get("exif", {"make": None, "model": None, "taken_at": None}),
            "geotag": results.get("geotag"),
            "plates": results.get("plates", []),
            "faces": results.get("faces", []),
        }
        # What the other analyzers (ANALYZERS) found, each under its own field.
        document.update((field, value) for field, value in results.items() if field not in document)
        if record.get("error"):
            document["error"] = record["error"]
        return document

    def plates_with_location(self, sha256: str) -> list[dict]:
        """The plates API's `/hash` answer: plates of a geotagged image, else []."""
        raw = self.redis.hget(keys.image(sha256), "analysis")
        if raw is None:
            return []
        results = json.loads(raw)
        geotag = results.get("geotag")
        if not geotag:
            return []
        return [
            {
                "license": plate["plate"],
                "confidence": plate["confidence"],
                "latitude": geotag["latitude"],
                "longitude": geotag["longitude"],
            }
            for plate in results.get("plates", [])
        ]

    def images_with_plate(self, plate: str) -> list[str]:
        """SHA-256 of every image whose best reading of a plate is this plate."""
        normal = normalize_plate(plate)
        if not normal:
            return []
        return sorted(_text(s) for s in self.redis.smembers(keys.plate_images(normal)))

    def known_plates(self) -> list[str]:
        return [_text(p) for p in self.redis.smembers(keys.known_plates())]

    def plates_near(self, plate: str, fuzziness: int) -> list[tuple[str, int]]:
        """(plate, edits) of the known plates within `fuzziness` edits, nearest first."""
        return self.plate_index.near(plate, fuzziness)

    def index_known_plates(self, batch: int = 1000) -> int:
        """File every known plate in the fuzzy index (data written before the index existed)."""
        count = 0
        for chunk in _chunks(self.redis.sscan_iter(keys.known_plates(), count=batch), batch):
            self.plate_index.add(_text(p) for p in chunk)
            count += len(chunk)
        return count

    def md5s(self, sha256s: list[str]) -> list[str]:
        if not sha256s:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for sha in sha256s:
                pipe.hget(keys.image(sha), "md5")
            return [_text(m) for m in pipe.execute() if m is not None]

    # -- writes ----------------------------------------------------------------

    def register_upload(self, digests: Digests, size: int, name: str | None = None) -> tuple[bool, str]:
        """Record an image (once) and one more name for it. Returns (created, status)."""
        created, status = self._register(**self._register_call(digests, size, name))
        return bool(created), _text(status)

    @staticmethod
    def _register_call(digests: Digests, size: int, name: str | None) -> dict:
        now = _now()
        return {
            "keys": [
                keys.image(digests.sha256),
                keys.image_names(digests.sha256),
                keys.digest_alias(digests.md5),
                keys.digest_alias(digests.sha224),
                keys.uploads_on_day(now.date().isoformat()),
                keys.recent_images(),
                keys.erased(digests.sha256), keys.erased(digests.md5), keys.erased(digests.sha224),
            ],
            "args": [
                digests.sha256, digests.md5, digests.sha224, size, _iso(now),
                now.timestamp(), name or "", STATS_DAYS_KEPT * 86400,
            ],
        }

    def mark_processing(self, sha256: str) -> str | None:
        """Set `processing` unless already done; returns the status it had (None: unknown)."""
        return _text(self._set_status(keys=[keys.image(sha256)], args=[PROCESSING, "", _iso(_now())]))

    def mark_failed(self, sha256: str, reason: str) -> str | None:
        return _text(self._set_status(keys=[keys.image(sha256)], args=[FAILED, reason[:500], _iso(_now())]))

    def save_analysis(self, sha256: str, *, format: str, width: int, height: int,
                      results: dict, camera_label: str | None) -> bool:
        """Store the analysis and index its plates, all at once. False if it was already done."""
        call = self._save_call(sha256, format, width, height, results, camera_label)
        outcome = self._save(**call)
        if outcome == -1:
            raise KeyError(f"no image record for {sha256}")
        # Idempotent, so also run when this was a redelivery of an analysis already saved.
        self.plate_index.add(call["args"][7:])
        return outcome == 1

    @staticmethod
    def _save_call(sha256: str, format: str, width: int, height: int, results: dict,
                   camera_label: str | None) -> dict:
        plates = sorted({p["plate"] for p in results.get("plates", []) if p.get("plate")})
        return {
            "keys": [keys.image(sha256), keys.format_counts(), keys.camera_counts(), keys.known_plates()]
            + [keys.plate_images(p) for p in plates],
            "args": [sha256, json.dumps(results, separators=(",", ":")), format, width, height,
                     _iso(_now()), camera_label or ""] + plates,
        }

    def import_analysed(self, images: list[dict]) -> None:
        """Record many analysed images in one round trip: the same writes as register_upload
        then save_analysis for each. `images`: dicts of digests, size, name and the keyword
        arguments of save_analysis. For imports and the benchmark's millions of records."""
        with self.redis.pipeline(transaction=False) as pipe:
            for image in images:
                image = dict(image)
                digests, size, name = image.pop("digests"), image.pop("size"), image.pop("name")
                self._register(**self._register_call(digests, size, name), client=pipe)
                call = self._save_call(digests.sha256, **image)
                self._save(**call, client=pipe)
                self.plate_index.add(call["args"][7:], client=pipe)
            pipe.execute()

    # -- URLs ------------------------------------------------------------------

    @staticmethod
    def url_key(url: str) -> str:
        return keys.url_seen(hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest())

    def image_for_url(self, url: str) -> str | None:
        return _text(self.redis.get(self.url_key(url)))

    def remember_url(self, url: str, sha256: str) -> None:
        self.redis.set(self.url_key(url), sha256)

    # -- statistics kept at ingest ---------------------------------------------

    def uploads_per_day(self, days: int = 30, today: datetime | None = None) -> dict[str, int]:
        """UTC day -> images first received that day, for the last `days` days with uploads."""
        today = (today or _now()).date()
        dates = [(today - timedelta(days=offset)).isoformat() for offset in range(days)]
        counts = self.redis.mget([keys.uploads_on_day(d) for d in dates])
        return {d: int(c) for d, c in sorted(zip(dates, counts)) if c}

    def top_formats(self, n: int = 1) -> list[tuple[str, int]]:
        return [(_text(f), int(c)) for f, c in self.redis.zrevrange(keys.format_counts(), 0, n - 1, withscores=True)]

    def top_cameras(self, n: int = 10) -> list[tuple[str, int]]:
        return [(_text(m), int(c)) for m, c in self.redis.zrevrange(keys.camera_counts(), 0, n - 1, withscores=True)]

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False


def _chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def open_storage(settings: Settings):
    """(redis client, ImageStore, BlobStore) for a service, all on one connection pool."""
    client = connect_redis(settings)
    return client, ImageStore(client), open_blob_store(settings, client)
