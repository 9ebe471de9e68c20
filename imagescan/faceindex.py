"""Face matching: an image's faces are stored, searched for, and matched images recorded both ways.

Redis is the source of truth (keys from :mod:`imagescan.keys`):

* the face partitions (:mod:`imagescan.facestore`): every encoding, its owner, the counters;
* ``image_faces``     string per image, JSON ``[{"id", "box"}]`` (a face marked not
                      matchable: ``{"box", "matchable": false}``, no id); it doubles as the
                      "faces already recorded" marker that makes re-processing idempotent;
* ``image_matches``   sorted set per image, other image's SHA-256 -> best distance.

The search itself is a :class:`imagescan.facesearch.FaceSearch`: an in-process copy of every
partition, or the face-search tier (FACE_SEARCH).

Why two photos processed at the same moment by two workers still match
-----------------------------------------------------------------------
A worker stores its image's faces in Redis (one atomic script per partition), and only then
searches; every search first brings the copy it runs on up to date with Redis. Of two faces
stored at about the same moment, the one stored later is stored after the other was: the
search for the later one starts after both are in Redis, so it finds the earlier one. The
match is stored on both images (ZADD LT keeps the smallest distance), so ``/match`` is a
plain read. If both workers see each other, both write the same pair: harmless.

Erasure: :func:`erase_faces` removes an image's faces from their partition and lists their
ids there; every copy drops them at its next catch-up. A face stored just as its image is
erased is removed again by the worker (it checks the tombstone again after writing the
image's face list), and a match is stored only while both images hold faces, so a stale row
can at most propose a match that is then refused. Every script and command touches one
image's keys or one partition's: each runs on one Redis Cluster slot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence

import numpy as np

from imagescan import keys
from imagescan.faceconfidence import match_confidence

from .facematrix import ENCODING_SIZE, EncodingMatrix, encoding_from_bytes, encoding_to_bytes  # noqa: F401
from .facesearch import FaceSearch, InProcessFaceSearch
from .facestore import FaceStore

log = logging.getLogger("imagescan.faceindex")
DEFAULT_TOLERANCE = 0.49  # no false match on any shared face set, recall >= 0.89 on each (bench/faces.py)

# KEYS: image_matches(x), image_faces(x). ARGV: (other sha256, distance) pairs.
# Adds the pairs only while image x holds faces; returns 1 when it did. LT: a pair only
# ever gets a smaller distance.
_ADD_MATCHES_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('ZADD', KEYS[1], 'LT', ARGV[i + 1], ARGV[i]) end
return 1
"""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ranked(best: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(best.items(), key=lambda item: (item[1], item[0]))


class FaceIndex:
    """One per worker process. Thread-safe; Redis is shared by every worker."""

    def __init__(self, redis, tolerance: float = DEFAULT_TOLERANCE, search: FaceSearch | None = None):
        pool = getattr(redis, "connection_pool", None)
        if getattr(pool, "connection_kwargs", {}).get("decode_responses"):
            raise ValueError("FaceIndex reads binary encodings: give it a client with decode_responses=False")
        self.redis = redis
        self.tolerance = float(tolerance)
        self.search = search if search is not None else InProcessFaceSearch(FaceStore(redis))
        self._matches_script = redis.register_script(_ADD_MATCHES_LUA)

    def __len__(self) -> int:
        return len(self.search)

    def sync(self) -> int:
        """Bring this process's copy (if it holds one) up to date with Redis; returns faces loaded."""
        return self.search.sync()

    def add_image_faces(self, sha256: str, faces: Iterable) -> list[tuple[str, float]]:
        """Record an image's faces and its matches; returns [(other sha256, distance)] best first.

        ``faces`` are FaceFound-like objects (``.box`` with ``to_dict()``, ``.encoding``).
        Processing the same image again adds no face; it only re-runs the (idempotent)
        matching with the faces stored the first time, which completes a run that died
        between the two steps.
        """
        stored = self.redis.get(keys.image_faces(sha256))
        if stored is None:
            stored = self._record_faces(sha256, list(faces))
            if stored is None:
                return []
        face_ids = [int(face["id"]) for face in json.loads(stored) if "id" in face]
        if not face_ids:
            return []
        encodings = list(self.search.store.encodings(face_ids).values())
        best = self.search.search(encodings, self.tolerance, exclude=sha256) if encodings else {}
        self._store_matches(sha256, best)
        return _ranked(best)

    def match_encodings(
        self, encodings: Iterable[Sequence[float]], exclude: str | None = None
    ) -> list[tuple[str, float]]:
        """Images holding a face within tolerance of any given encoding, best first (no writes)."""
        encodings = list(encodings)
        return _ranked(self.search.search(encodings, self.tolerance, exclude=exclude)) if encodings else []

    def _record_faces(self, sha256: str, faces: list) -> bytes | None:
        """Store the faces, then the image's face list; None (faces gone again) when it was erased.

        Check, write, check again, each step on one key (the tombstone and the face list may sit
        in different Redis Cluster slots): an erasure before the second check is seen there, one
        after it finds the face list and removes it with the faces.
        """
        for face in faces:
            encoding_to_bytes(face.encoding)  # a bad encoding fails here, before anything is written
        if self.redis.exists(keys.erased(sha256)):
            return None
        matchable = [face for face in faces if getattr(face, "matchable", True)]
        ids = iter(self.search.add(sha256, [face.encoding for face in matchable]) if matchable else [])
        listed = [_listing(face, ids) for face in faces]
        self.redis.set(keys.image_faces(sha256), json.dumps(listed, separators=(",", ":")), nx=True)
        stored = self.redis.get(keys.image_faces(sha256))
        if stored is None or self.redis.exists(keys.erased(sha256)):  # erased while it was analysed
            self.redis.delete(keys.image_faces(sha256))
            self.search.remove(sha256)
            return None
        return stored

    def _store_matches(self, sha256: str, best: dict[str, float]) -> None:
        """Both ways, one image's keys per script; a pair stays only while both images hold faces."""
        if not best:
            return
        others = sorted(best)
        pairs = [value for other in others for value in (other, best[other])]
        if not self._add_matches(sha256, pairs):
            return  # this image was erased meanwhile
        for other in others:
            if not self._add_matches(other, [sha256, best[other]]):
                self.redis.zrem(keys.image_matches(sha256), other)  # the other was erased meanwhile
        if not self.redis.exists(keys.image_faces(sha256)):  # erased while the others were written
            for other in others:
                self.redis.zrem(keys.image_matches(other), sha256)

    def _add_matches(self, sha256: str, pairs: list) -> bool:
        return bool(self._matches_script(keys=[keys.image_matches(sha256), keys.image_faces(sha256)], args=pairs))


def describe_face(face) -> dict:
    """What the image shows of a face: its box, and ``"matchable": false`` on a face the engine
    marked too small or blurred to encode reliably (shown, never searched, never matched)."""
    described = {"box": face.box.to_dict()}
    if not getattr(face, "matchable", True):
        described["matchable"] = False
    return described


def _listing(face, ids) -> dict:
    """A face of the image's face list: described, with its id in the face partitions when it
    is matchable (one that is not has no id: it was never stored there)."""
    described = describe_face(face)
    return described if "matchable" in described else {"id": next(ids), **described}


def erase_faces(redis, sha256: str) -> int:
    """Remove the image's faces from the face partitions (every copy drops them at its next catch-up)."""
    return FaceStore(redis).remove(sha256)


def matches_for(redis, sha256: str) -> list[tuple[str, float]]:
    """Other images with a face matching one of this image's faces, best (smallest distance) first."""
    pairs = redis.zrange(keys.image_matches(sha256), 0, -1, withscores=True)
    return [(_text(other), float(distance)) for other, distance in pairs]


def faces_for(redis, sha256: str) -> list[dict] | None:
    """The image's stored faces ``[{"id", "box"}]``; None when its faces were never recorded."""
    raw = redis.get(keys.image_faces(sha256))
    return None if raw is None else json.loads(raw)


def matches_by_face(redis, sha256: str, tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """The image's faces, each with the other images holding a matching face, best first.

    A read for `/images/<digest>`: the matched images come from the stored match set, and
    only their few encodings are compared with this image's, face by face.
    """
    faces = faces_for(redis, sha256) or []
    if not faces:
        return []
    others = [other for other, _ in matches_for(redis, sha256)]
    other_faces = {other: faces_for(redis, other) or [] for other in others}
    ids = [f["id"] for f in faces if "id" in f] + [f["id"] for listed in other_faces.values() for f in listed if "id" in f]
    encodings = FaceStore(redis).encodings(ids)
    described = []
    for face in faces:
        mine = encodings.get(face.get("id"))
        found: dict[str, float] = {}
        for other, listed in other_faces.items():
            for theirs in (encodings.get(f.get("id")) for f in listed):
                if mine is None or theirs is None:
                    continue
                distance = float(np.linalg.norm(mine.astype(np.float64) - theirs))
                if distance <= tolerance and distance < found.get(other, float("inf")):
                    found[other] = distance
        ranked = sorted(found.items(), key=lambda item: (item[1], item[0]))
        matches = [{"sha256": other, "distance": round(d, 4), "confidence": round(match_confidence(d), 4)}
                   for other, d in ranked]
        listed = {"box": face["box"], "matches": matches}
        if face.get("matchable") is False:
            listed["matchable"] = False
        described.append(listed)
    return described
