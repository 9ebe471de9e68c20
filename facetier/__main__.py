"""`python -m facetier`: one shard of the face-search tier.

The shard holds the face partitions `p` with `p % FACE_TIER_SHARDS == shard` (the shard number
is FACE_TIER_SHARD, or the number ending HOSTNAME: `facetier-2` in a StatefulSet is shard 2).
At start it loads its snapshot from FACE_TIER_DIR and catches up with Redis (only the faces
added and erased since the snapshot); it saves a snapshot every FACE_TIER_SNAPSHOT_SECONDS
and when stopped. HTTP, JSON:

* ``POST /search`` ``{"encodings": [[128 numbers], ...], "tolerance": t, "exclude": sha256|null}``
  -> ``{"matches": {sha256: distance}, "partitions": [...], "faces": n}``, after catching up
  with Redis, so a face stored before the request is always found;
* ``GET /healthz`` (the process answers), ``GET /readyz`` (snapshot loaded and caught up).
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads: a shard answers one search at a time (under its
# lock), and a BLAS thread pool only fights the other processes for the cores (measured: five
# times the CPU per search on a busy two-core machine).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import logging
import math
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis

from imagescan import config
from imagescan.config import Settings
from imagescan.facesearch import shard_partitions
from imagescan.faceshard import ShardIndex
from imagescan.facestore import FaceStore
from imagescan.facevectors import ShardVectors
from imagescan.store import connect_redis

log = logging.getLogger("imagescan.facetier")
FOLLOW_SECONDS = 1.0  # catch up between queries too, so a query rarely has many faces to load
MAX_BODY = 1 << 20  # an image has a few faces; 1 MiB is thousands


def shard_number(settings: Settings) -> int:
    if settings.face_tier_shard >= 0:
        return settings.face_tier_shard
    ending = re.search(r"-(\d+)$", settings.hostname)
    if not ending:
        raise SystemExit(f"facetier: set FACE_TIER_SHARD (HOSTNAME {settings.hostname!r} ends in no number)")
    return int(ending.group(1))


class TierShard:
    def __init__(self, settings: Settings, client: redis.Redis):
        vectors = ShardVectors(settings.face_ivf_from, settings.face_ivf_probes, settings.face_ivf_lists)
        partitions = shard_partitions(shard_number(settings), settings.face_tier_shards)
        self.index = ShardIndex(FaceStore(client), partitions, vectors)
        self.directory = Path(settings.face_tier_dir)
        self.snapshot_seconds = settings.face_tier_snapshot_seconds
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def start(self) -> None:
        restored = self.index.restore(self.directory)
        log.warning("facetier: partitions %s, %s", self.index.partitions,
                    f"{len(self.index)} faces from the snapshot" if restored else "no snapshot: loading from Redis")
        while not self.stopping.is_set():
            try:
                log.warning("facetier: %d faces loaded from Redis", self.index.catch_up())
                break
            except redis.RedisError as error:
                log.warning("facetier: Redis unavailable (%r), retrying", error)
                self.stopping.wait(2)
        self.ready.set()

    def follow(self) -> None:
        """Keep up with Redis, and save a snapshot now and then, until stopped."""
        waited = 0.0
        while not self.stopping.wait(FOLLOW_SECONDS):
            waited += FOLLOW_SECONDS
            try:
                self.index.catch_up()
                if waited >= self.snapshot_seconds:
                    self.save()
                    waited = 0.0
            except (redis.RedisError, OSError) as error:
                log.warning("facetier: %r (trying again)", error)

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.index.save(self.directory)


def search_request(body: bytes) -> tuple[list, float, str | None]:
    """The query of a POST /search body; ValueError says what is wrong with it."""
    query = json.loads(body)
    encodings, tolerance, exclude = query.get("encodings"), query.get("tolerance"), query.get("exclude")
    if not isinstance(encodings, list) or not all(isinstance(e, list) and len(e) == 128 for e in encodings):
        raise ValueError("encodings must be a list of lists of 128 numbers")
    numbers = [x for e in encodings for x in e]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers):
        raise ValueError("encodings must hold finite numbers only")
    if not isinstance(tolerance, (int, float)) or not 0 < tolerance < 2:
        raise ValueError("tolerance must be a number between 0 and 2")
    if exclude is not None and not (isinstance(exclude, str) and re.fullmatch(r"[0-9a-f]{64}", exclude)):
        raise ValueError("exclude must be a SHA-256 in hex or null")
    return encodings, float(tolerance), exclude


def handler_for(shard: TierShard):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # a worker keeps its connection to the shard open
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, {"status": "alive"})
            elif self.path == "/readyz":
                ready = shard.ready.is_set()
                self._reply(200 if ready else 503, {"ready": ready, "faces": len(shard.index)})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/search":
                return self._reply(404, {"error": "not found"})
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                return self._reply(413 if length else 400, {"error": f"a body of 1..{MAX_BODY} bytes"})
            try:
                encodings, tolerance, exclude = search_request(self.rfile.read(length))
            except (ValueError, AttributeError) as error:
                return self._reply(400, {"error": str(error)})
            if not shard.ready.is_set():
                return self._reply(503, {"error": "loading"})
            try:
                matches = shard.index.search(encodings, tolerance, exclude)
            except redis.RedisError as error:
                return self._reply(503, {"error": f"Redis unavailable: {error}"})
            self._reply(200, {"matches": matches, "partitions": shard.index.partitions, "faces": len(shard.index)})

        def _reply(self, status: int, document: dict) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status >= 400:  # the request's body may be unread: this connection ends here
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # one line per query would drown the logs
            pass

    return Handler


def main() -> int:
    settings = config.load("facetier")
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    shard = TierShard(settings, connect_redis(settings))
    server = ThreadingHTTPServer(("", settings.face_tier_port), handler_for(shard))
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: (stop.set(), shard.stopping.set()))
    threading.Thread(target=server.serve_forever, daemon=True).start()  # /healthz answers while loading
    shard.start()
    follower = threading.Thread(target=shard.follow, daemon=True)
    follower.start()
    log.warning("facetier: serving %d faces on port %d", len(shard.index), settings.face_tier_port)
    stop.wait()
    follower.join()
    server.shutdown()
    shard.save()  # the next start replays only what comes after this
    log.warning("facetier: snapshot saved, %d faces", len(shard.index))
    return 0


if __name__ == "__main__":
    sys.exit(main())
