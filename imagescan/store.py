"""ImageStore: every read and write of image records and their indexes in Redis.

The keys of one image share a hash slot, and what one image write changes in them runs as one
Lua script, so a reader never sees half a record. What points at the image from elsewhere
(aliases, the listing, plate sets, statistics) is written by single-slot steps around that
script, in an order that a crash cannot turn into a lie (imagescan.imagesteps): on Redis
Cluster as on one Redis.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import redis

from . import erasesteps, imagesteps, keys, stats
from .blobs import open_blob_store
from .config import Settings
from .digests import Digests, digest_kind
from .imagesteps import UNCOUNTED, UNLISTED
from .plateindex import PlateIndex
from .platetext import normalize_plate
from .recordscripts import BEGIN_SAVE, REGISTER, SAVE, SET_STATUS
from .redisclient import connect_redis, is_cluster

QUEUED, PROCESSING, DONE, FAILED = "queued", "processing", "done", "failed"
NAMES_SHOWN = 50  # names of one image in a listing: the most recent ones (page the rest)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class ImageStore:
    def __init__(self, client: redis.Redis):
        self.redis = client
        self._register = client.register_script(REGISTER)
        self._begin_save = client.register_script(BEGIN_SAVE)
        self._save = client.register_script(SAVE)
        self._set_status = client.register_script(SET_STATUS)
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
        """Every indexed plate: the known-plates pieces merged."""
        with self.redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.SHARDS):
                pipe.smembers(keys.known_plates(shard))
            return [_text(p) for members in pipe.execute() for p in members]

    def plates_near(self, plate: str, fuzziness: int) -> list[tuple[str, int]]:
        """(plate, edits) of the known plates within `fuzziness` edits, nearest first."""
        return self.plate_index.near(plate, fuzziness)

    def index_known_plates(self, batch: int = 1000) -> int:
        """File every known plate in the fuzzy index, all its forms (an index written before
        the index, or its pair forms, existed), then say the index has every plate's pair forms.
        Idempotent; run with no worker of an earlier release filing plates meanwhile."""
        count = 0
        for shard in range(keys.SHARDS):
            for chunk in _chunks(self.redis.sscan_iter(keys.known_plates(shard), count=batch), batch):
                self.plate_index.add(_text(p) for p in chunk)
                count += len(chunk)
        self.plate_index.mark_pairs_filed()
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
        call = self._register_call(digests, size, name)
        created, status, unlisted, erasing = self._register(**call)
        if erasing and erasesteps.finish(self.redis, digests.sha256):  # these bytes were being erased
            created, status, unlisted, erasing = self._register(**call)
        if created:  # list it: what to list is known
            imagesteps.list_image(self.redis, digests.sha256, self._listed_record(digests, call))
        elif unlisted:  # an earlier attempt died before it was listed: list it now
            imagesteps.complete_pending(self.redis, digests.sha256)
        return bool(created), _text(status)

    @staticmethod
    def _listed_record(digests: Digests, call: dict) -> dict:
        """What the listing steps need of a record just created by `call`."""
        return {"md5": digests.md5, "sha224": digests.sha224, "ts": call["args"][5], "received_at": call["args"][4]}

    @staticmethod
    def _register_call(digests: Digests, size: int, name: str | None) -> dict:
        now = _now()
        return {
            "keys": [keys.image(digests.sha256), keys.image_names(digests.sha256),
                     keys.image_erasure(digests.sha256)],
            "args": [digests.sha256, digests.md5, digests.sha224, size, _iso(now), repr(now.timestamp()),
                     name or ""],
        }

    def mark_processing(self, sha256: str) -> str | None:
        """Set `processing` unless already done; returns the status it had (None: unknown).
        An upload whose steps were cut short is finished here, before its analysis."""
        status, unlisted = self._set_status(keys=[keys.image(sha256)], args=[PROCESSING, "", _iso(_now())])
        if unlisted:
            imagesteps.complete_pending(self.redis, sha256)
        return _text(status)

    def mark_failed(self, sha256: str, reason: str) -> str | None:
        status, _ = self._set_status(keys=[keys.image(sha256)], args=[FAILED, reason[:500], _iso(_now())])
        return _text(status)

    def save_analysis(self, sha256: str, *, format: str, width: int, height: int,
                      results: dict, camera_label: str | None) -> bool:
        """Store the analysis and index its plates. False if it was already done.

        Plates are filed before the record says `done` (so `done` means findable by plate),
        after the record names them (so an erasure meanwhile unfiles them)."""
        plates = sorted({p["plate"] for p in results.get("plates", []) if p.get("plate")})
        outcome = self._begin_save(keys=[keys.image(sha256)], args=[",".join(plates)])
        if outcome == 1:
            imagesteps.file_plates(self.redis, self.plate_index, sha256, plates)
            args = self._save_args(format, width, height, results, camera_label)
            outcome, incarnation = self._save(keys=[keys.image(sha256)], args=args)
        if outcome == -1:
            imagesteps.unfile_plates(self.redis, sha256, plates)  # erased meanwhile
            raise KeyError(f"no image record for {sha256}")
        if outcome == 1:
            imagesteps.count_analysis(self.redis, sha256, {"ts": _text(incarnation), "format": format,
                                                           "camera": camera_label or ""})
        else:  # a redelivery: finish what the first delivery may have left
            imagesteps.complete_pending(self.redis, sha256)
        return outcome == 1

    @staticmethod
    def _save_args(format: str, width: int, height: int, results: dict, camera_label: str | None) -> list:
        return [json.dumps(results, separators=(",", ":")), format, width, height, _iso(_now()),
                camera_label or ""]

    def import_analysed(self, images: list[dict]) -> None:
        """Record many new analysed images in few round trips: the same writes as
        register_upload then save_analysis for each (an image already stored goes through
        those, and so does every image on a cluster, whose pipelines run on several nodes at
        once: the steps' order would not hold). `images`: dicts of digests, size, name and the
        keyword arguments of save_analysis. For imports and the benchmark's millions of records."""
        created = [False] * len(images)
        if not is_cluster(self.redis):
            with self.redis.pipeline(transaction=False) as pipe:  # one Redis runs it in order
                calls = [self._register_call(image["digests"], image["size"], image["name"]) for image in images]
                for call in calls:
                    self._register(**call, client=pipe)
                created = [reply[0] == 1 for reply in pipe.execute()]
                for image, call, new in zip(images, calls, created):
                    if new:
                        self._queue_new_analysed(pipe, image, call)
                pipe.execute()
        for image, new in zip(images, created):
            if not new:
                fields = {k: v for k, v in image.items() if k not in ("digests", "size", "name")}
                self.register_upload(image["digests"], image["size"], image["name"])
                self.save_analysis(image["digests"].sha256, **fields)

    def _queue_new_analysed(self, pipe, image: dict, call: dict) -> None:
        """The steps of a record just created, values known: no read, all queued on `pipe`, in
        the order the single steps keep (one Redis runs a pipeline in order)."""
        sha256, results = image["digests"].sha256, image["results"]
        plates = sorted({p["plate"] for p in results.get("plates", []) if p.get("plate")})
        record = self._listed_record(image["digests"], call)
        imagesteps.queue_listing(pipe, sha256, record)
        pipe.hdel(keys.image(sha256), UNLISTED)  # after the steps: one Redis runs them in order
        self._begin_save(keys=[keys.image(sha256)], args=[",".join(plates)], client=pipe)
        imagesteps.queue_plates(pipe, self.plate_index, sha256, plates)
        args = self._save_args(image["format"], image["width"], image["height"], results, image["camera_label"])
        self._save(keys=[keys.image(sha256)], args=args, client=pipe)
        stats.count_analysis(pipe, sha256, record["ts"], image["format"], image["camera_label"])
        pipe.hdel(keys.image(sha256), UNCOUNTED)

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
        return stats.uploads_per_day(self.redis, days, today)

    def top_formats(self, n: int = 1) -> list[tuple[str, int]]:
        return stats.top(self.redis, keys.format_counts(), n)

    def top_cameras(self, n: int = 10) -> list[tuple[str, int]]:
        return stats.top(self.redis, keys.camera_counts(), n)

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping(target_nodes="all") if is_cluster(self.redis) else self.redis.ping())
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
