"""Where a worker's face queries go: its own in-process copy, or the face-search tier.

Both keep Redis the source of truth (:mod:`imagescan.facestore`): ``add`` and ``remove`` write
Redis, and a search first brings the searching copy up to date with Redis. Which copy
answers is FACE_SEARCH:

* ``local`` (small installs, tests): every worker holds every partition
  (:class:`imagescan.faceshard.ShardIndex`), its memory grows with the number of faces;
* ``tier``: FACE_TIER_URLS name the shards of the face-search tier (the ``facetier``
  deployable), each holding some partitions; a search asks every shard at once and merges
  the answers, and the worker holds no encoding at all.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import redis as redis_lib

from .faceshard import ShardIndex
from .facestore import PARTITIONS, FaceStore
from .facevectors import ShardVectors


class FaceSearchUnavailable(redis_lib.ConnectionError):
    """A tier shard did not answer. A ConnectionError of Redis on purpose: the worker already
    retries its storage with back-off and returns the message to the queue when stopping."""


class FaceSearch(Protocol):
    store: FaceStore

    def add(self, sha256: str, encodings: Sequence[Sequence[float]]) -> list[int]:
        """Store the image's faces; searchable by every search that starts after this returns."""

    def search(self, encodings, tolerance: float, exclude: str | None = None) -> dict[str, float]:
        """Images with a face within tolerance of any encoding, with their best distance."""

    def remove(self, sha256: str) -> int:
        """Erase the image's faces; no search that starts after this returns finds them."""

    def sync(self) -> int:
        """Catch the copy this process holds up with Redis; returns how many faces came."""

    def __len__(self) -> int:
        """Faces this process holds."""


def shard_partitions(shard: int, shards: int) -> list[int]:
    """The partitions tier shard `shard` of `shards` holds."""
    if not 0 <= shard < shards <= PARTITIONS:
        raise ValueError(f"shard {shard} of {shards}: shards must be 1..{PARTITIONS}, shard 0..shards-1")
    return [partition for partition in range(PARTITIONS) if partition % shards == shard]


class _InRedis:
    store: FaceStore

    def add(self, sha256: str, encodings: Sequence[Sequence[float]]) -> list[int]:
        return self.store.add(sha256, encodings) if len(encodings) else []

    def remove(self, sha256: str) -> int:
        return self.store.remove(sha256)


class InProcessFaceSearch(_InRedis):
    """Every partition in this process, searched exactly (the float32 matrix, never IVF)."""

    def __init__(self, store: FaceStore, index: ShardIndex | None = None):
        self.store = store
        self.index = index if index is not None else ShardIndex(store, range(PARTITIONS), ShardVectors(ivf_from=0))

    def __len__(self) -> int:
        return len(self.index)

    def sync(self) -> int:
        return self.index.catch_up()

    def search(self, encodings, tolerance: float, exclude: str | None = None) -> dict[str, float]:
        return self.index.search(encodings, tolerance, exclude)


class TierFaceSearch(_InRedis):
    """Asks every shard of the face-search tier; the worker holds no encodings."""

    def __init__(self, store: FaceStore, urls: Sequence[str], timeout: float = 10.0):
        if not urls:
            raise ValueError("FACE_SEARCH=tier needs FACE_TIER_URLS")
        self.store = store
        self.urls = [url.rstrip("/") for url in urls]
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=len(self.urls), thread_name_prefix="facetier")
        self._connections = threading.local()  # url -> HTTPConnection, per pool thread

    def __len__(self) -> int:
        return 0

    def sync(self) -> int:
        return 0  # the shards catch up themselves, before every search

    def search(self, encodings, tolerance: float, exclude: str | None = None) -> dict[str, float]:
        queries = np.asarray(encodings, dtype=np.float32).reshape(-1, 128)
        if not len(queries):
            return {}
        body = json.dumps({"encodings": queries.tolist(), "tolerance": tolerance, "exclude": exclude}).encode()
        answers = list(self._pool.map(lambda url: self._ask(url, body), self.urls))
        covered = sorted(p for answer in answers for p in answer["partitions"])
        if covered != list(range(PARTITIONS)):
            raise FaceSearchUnavailable(f"the tier's shards hold partitions {covered}, not each of 0..{PARTITIONS - 1}"
                                        " once: check FACE_TIER_URLS and the shards' FACE_TIER_SHARDS")
        best: dict[str, float] = {}
        for answer in answers:
            for owner, distance in answer["matches"].items():
                best[owner] = min(distance, best.get(owner, distance))
        return best

    def _ask(self, url: str, body: bytes) -> dict:
        """POST the query on this thread's kept-alive connection to the shard (a new one if it broke)."""
        connections = self._connections.__dict__
        for attempt in (1, 2):
            connection = connections.get(url)
            if connection is None:
                parts = urllib.parse.urlsplit(url)
                connection = connections[url] = http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                                                           timeout=self.timeout)
            try:
                connection.request("POST", "/search", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                reply = response.read()
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}: {reply[:200]!r}")
                return json.loads(reply)
            except (OSError, ValueError, http.client.HTTPException) as error:
                connections.pop(url).close()
                stale = isinstance(error, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected))
                if attempt == 2 or not stale:  # a kept-alive connection the shard closed: once more
                    raise FaceSearchUnavailable(f"face search shard {url}: {error!r}") from error
        raise AssertionError("unreachable")


def face_search_for(settings, redis) -> FaceSearch:
    """The face search FACE_SEARCH chooses, over this Redis client (decode_responses=False)."""
    store = FaceStore(redis)
    if settings.face_search == "tier":
        return TierFaceSearch(store, settings.face_tier_urls, settings.face_tier_timeout)
    return InProcessFaceSearch(store)
