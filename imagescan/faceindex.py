"""Face matching at scale: every known face encoding in one float32 matrix per process.

Redis is the source of truth (keys from :mod:`imagescan.keys`):

* ``face_seq``        counter, the last face id handed out;
* ``face_encodings``  hash, face id -> 128 little-endian float32 (512 bytes), or empty for a
                      face the engine marked not matchable (never loaded, never matched);
* ``face_owner``      hash, face id -> SHA-256 of the image holding the face;
* ``image_faces``     string per image, JSON ``[{"id", "box"}]`` (plus ``"matchable": false``
                      on a face not matchable); it doubles as the
                      "faces already added" marker that makes re-processing idempotent;
* ``image_matches``   sorted set per image, other image's SHA-256 -> best distance.

Why two photos processed at the same moment by two workers still match
-----------------------------------------------------------------------
One Lua script hands out each new face id with INCR and writes the encoding and the
owner in the same atomic step, so once ``face_seq`` reads N, every face with id <= N is
readable. After adding its faces, a worker catches its matrix up to the current
``face_seq`` (at least its own highest new id) and runs the range query. For any two
faces, the worker of the later one (higher id) therefore sees the earlier one, and the
match is stored on both images (ZADD LT keeps the smallest distance), so ``/match`` is a
plain read. If both workers see each other, both write the same pair: harmless.

Erasure (imagescan.erasure) removes an image's faces from Redis and lists their ids in
``face_erasures``; each worker drops those rows from its matrix on its next sync. Until
then a stale row can only propose a match: the script storing matches writes a pair only
while both images still hold faces, and faces are never added under an erasure tombstone.

Each process keeps its own matrix, grown by doubling, and the query is one vectorised
pass: ``|a-b|^2 = |a|^2 + |b|^2 - 2 a.b`` with a matrix-vector product, candidates
re-checked exactly in float64 so the float32 shortcut never changes an answer.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence

import numpy as np

from imagescan import keys
from imagescan.faceconfidence import match_confidence

from .facematrix import ENCODING_DTYPE, ENCODING_SIZE, EncodingMatrix, encoding_from_bytes, encoding_to_bytes

log = logging.getLogger("imagescan.faceindex")
DEFAULT_TOLERANCE = 0.49  # no false match on any shared face set, recall >= 0.89 on each (bench/faces.py)
_SYNC_CHUNK = 2000  # face ids per Lua call while catching up: ~1 MB reply, Redis busy a few ms
KEPT_ERASURES = 100_000  # face erasures listed in Redis; a worker further behind reloads all

# KEYS: face_seq, face_encodings, face_owner, image_faces(sha), erasure tombstone of sha
# ARGV: sha256, then one (encoding bytes, '"box":{...}' JSON members) pair per face; an
# empty encoding (a face marked not matchable) is never loaded into a matrix
# Returns {1, faces JSON} when the faces were added now, {0, faces JSON} when the image
# already had its faces (a redelivered message) or was just erased: then nothing is written.
_ADD_FACES_LUA = """
local existing = redis.call('GET', KEYS[4])
if existing then
    return {0, existing}
end
if redis.call('EXISTS', KEYS[5]) == 1 then
    return {0, '[]'}
end
local parts = {}
for i = 2, #ARGV, 2 do
    local id = redis.call('INCR', KEYS[1])
    redis.call('HSET', KEYS[2], id, ARGV[i])
    redis.call('HSET', KEYS[3], id, ARGV[1])
    parts[#parts + 1] = '{"id":' .. id .. ',' .. ARGV[i + 1] .. '}'
end
local faces = '[' .. table.concat(parts, ',') .. ']'
redis.call('SET', KEYS[4], faces)
return {1, faces}
"""


# KEYS: image_matches(sha), image_faces(sha), then image_matches(other), image_faces(other)
# per other image; ARGV: sha256, then (other sha256, distance) per other image.
# A pair is stored only while both images hold faces: never for an image being erased.
# LT: a new pair is added, an existing pair only ever gets a smaller distance.
_STORE_MATCHES_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local stored = 0
for i = 3, #KEYS, 2 do
    if redis.call('EXISTS', KEYS[i + 1]) == 1 then
        local other, distance = ARGV[i - 1], ARGV[i]
        redis.call('ZADD', KEYS[1], 'LT', distance, other)
        redis.call('ZADD', KEYS[i], 'LT', distance, ARGV[1])
        stored = stored + 1
    end
end
return stored
"""


# KEYS: face_encodings, face_owner; ARGV: first id, last id, encoding size in bytes.
# Returns the faces present in that id range (ids of deleted faces are skipped) as a
# count and three bulk strings, encodings concatenated, owners and ids joined by newlines:
# two large replies parse far faster in redis-py than HMGET arrays of thousands of items.
_FACE_RANGE_LUA = """
local ids = {}
for id = tonumber(ARGV[1]), tonumber(ARGV[2]) do
    ids[#ids + 1] = id
end
local all_encodings = redis.call('HMGET', KEYS[1], unpack(ids))
local all_owners = redis.call('HMGET', KEYS[2], unpack(ids))
local encodings, owners, found = {}, {}, {}
for i = 1, #ids do
    local encoding, owner = all_encodings[i], all_owners[i]
    if encoding and owner and string.len(encoding) == tonumber(ARGV[3]) then
        encodings[#encodings + 1] = encoding
        owners[#owners + 1] = owner
        found[#found + 1] = ids[i]
    end
end
return {#owners, table.concat(encodings), table.concat(owners, '\\n'), table.concat(found, '\\n')}
"""


def _face_arguments(face) -> list:
    """A face's encoding and listing for the add script. A face the engine marked not
    matchable (too small or blurred) is listed with ``"matchable": false`` and stored
    without an encoding, so that no matrix ever holds it and it matches nothing."""
    members = {"box": face.box.to_dict()}
    matchable = getattr(face, "matchable", True)
    if not matchable:
        members["matchable"] = False
    listing = json.dumps(members, separators=(",", ":"))[1:-1]
    return [encoding_to_bytes(face.encoding) if matchable else b"", listing]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class FaceIndex:
    """One per worker process. Thread-safe; Redis is shared by every worker."""

    def __init__(self, redis, tolerance: float = DEFAULT_TOLERANCE):
        pool = getattr(redis, "connection_pool", None)
        if getattr(pool, "connection_kwargs", {}).get("decode_responses"):
            raise ValueError("FaceIndex reads binary encodings: give it a client with decode_responses=False")
        self.redis = redis
        self.tolerance = float(tolerance)
        self._matrix = EncodingMatrix()
        self._synced_through = 0  # every face id <= this is in the matrix (or was deleted)
        self._last_owner: bytes | None = None  # owner of face `_synced_through` when it was loaded
        self._erasures_seen: int | None = None  # face erasures applied to the matrix
        self._lock = threading.Lock()
        self._add_script = redis.register_script(_ADD_FACES_LUA)
        self._range_script = redis.register_script(_FACE_RANGE_LUA)
        self._matches_script = redis.register_script(_STORE_MATCHES_LUA)

    def __len__(self) -> int:
        return len(self._matrix)

    def sync(self) -> int:
        """Load every face added (by any worker) since the last sync; returns how many."""
        with self._lock:
            return self._sync_locked()

    def add_image_faces(self, sha256: str, faces: Iterable) -> list[tuple[str, float]]:
        """Record an image's faces and its matches; returns [(other sha256, distance)] best first.

        ``faces`` are FaceFound-like objects (``.box`` with ``to_dict()``, ``.encoding``).
        Processing the same image again adds no face; it only re-runs the (idempotent)
        matching with the faces stored the first time, which completes a run that died
        between the two steps.
        """
        faces = list(faces)
        arguments: list = [sha256]
        for face in faces:
            arguments += _face_arguments(face)
        _, stored_json = self._add_script(
            keys=[keys.face_seq(), keys.face_encodings(), keys.face_owner(), keys.image_faces(sha256),
                  keys.erased(sha256)],
            args=arguments,
        )
        face_ids = [int(face["id"]) for face in json.loads(stored_json)]
        if not face_ids:
            return []
        with self._lock:
            self._sync_locked()
            encodings = self._fetch_encodings(face_ids)
            best = self._best_matches(sha256, encodings)
        self._store_matches(sha256, best)
        return sorted(best.items(), key=lambda item: (item[1], item[0]))

    def match_encodings(
        self, encodings: Iterable[Sequence[float]], exclude: str | None = None
    ) -> list[tuple[str, float]]:
        """Images holding a face within tolerance of any given encoding, best first (no writes)."""
        with self._lock:
            self._sync_locked()
            best = self._best_matches(exclude, list(encodings))
        return sorted(best.items(), key=lambda item: (item[1], item[0]))

    def _best_matches(self, sha256: str | None, encodings) -> dict[str, float]:
        if not encodings:
            return {}
        queries = np.stack([np.asarray(encoding, dtype=np.float32) for encoding in encodings])
        return self._matrix.within(queries, self.tolerance, exclude_owner=sha256)

    def _sync_locked(self) -> int:
        if self._erasures_seen is None:  # erasures before the first load removed their faces already
            self._erasures_seen = int(self.redis.get(keys.face_erasure_seq()) or 0)
        loaded = self._load_new_faces()
        self._apply_erasures()
        return loaded

    def _apply_erasures(self) -> None:
        """Drop faces erased (by any process) since the last sync; reload all when too far behind."""
        latest = int(self.redis.get(keys.face_erasure_seq()) or 0)
        if latest == self._erasures_seen:
            return
        if latest - self._erasures_seen > KEPT_ERASURES or latest < self._erasures_seen:
            self._reset()
            self._erasures_seen = latest
            self._load_new_faces()
            return
        erased = self.redis.zrangebyscore(keys.face_erasures(), self._erasures_seen + 1, latest)
        self._matrix.remove_faces(int(face_id) for face_id in erased)
        self._erasures_seen = latest

    def _reset(self) -> None:
        self._matrix = EncodingMatrix()
        self._synced_through, self._last_owner = 0, None

    def _load_new_faces(self) -> int:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.face_seq())
            pipe.hget(keys.face_owner(), self._synced_through)
            latest, owner = pipe.execute()
        latest = int(latest or 0)
        if latest < self._synced_through or owner != self._last_owner:
            # Redis went back in time (restored from a snapshot that lost the last faces): ids
            # are handed out again and some faces are gone, so the matrix is rebuilt. (The last
            # loaded face being erased also lands here: rare, and a reload is always correct.)
            log.warning("face counter went back from %d to %d; reloading the face index",
                        self._synced_through, latest)
            self._reset()
        start = self._synced_through
        self._matrix.reserve(len(self._matrix) + latest - self._synced_through)  # one allocation at start-up
        loaded = 0
        while self._synced_through < latest:
            first = self._synced_through + 1
            last = min(latest, self._synced_through + _SYNC_CHUNK)
            count, raw_encodings, raw_owners, raw_ids = self._range_script(
                keys=[keys.face_encodings(), keys.face_owner()],
                args=[first, last, ENCODING_DTYPE.itemsize * ENCODING_SIZE],
            )
            if count:
                owners = _text(raw_owners).split("\n")
                encodings = np.frombuffer(raw_encodings, dtype=ENCODING_DTYPE).reshape(-1, ENCODING_SIZE)
                self._matrix.append(encodings, owners, [int(i) for i in _text(raw_ids).split("\n")])
                loaded += len(owners)
            self._synced_through = last
        if self._synced_through != start:
            self._last_owner = self.redis.hget(keys.face_owner(), self._synced_through)
        return loaded

    def _fetch_encodings(self, face_ids: list[int]) -> list[np.ndarray]:
        raw = self.redis.hmget(keys.face_encodings(), face_ids)
        return [encoding_from_bytes(data) for data in raw if data]

    def _store_matches(self, sha256: str, best: dict[str, float]) -> None:
        if not best:
            return
        others = sorted(best)
        script_keys = [keys.image_matches(sha256), keys.image_faces(sha256)]
        arguments: list = [sha256]
        for other in others:
            script_keys += [keys.image_matches(other), keys.image_faces(other)]
            arguments += [other, best[other]]
        self._matches_script(keys=script_keys, args=arguments)


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
    ids = [face["id"] for face in faces] + [f["id"] for listed in other_faces.values() for f in listed]
    encodings = dict(zip(ids, (encoding_from_bytes(raw) if raw else None
                               for raw in redis.hmget(keys.face_encodings(), ids))))
    described = []
    for face in faces:
        mine = encodings.get(face["id"])
        found: dict[str, float] = {}
        for other, listed in other_faces.items():
            for theirs in (encodings.get(f["id"]) for f in listed):
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
