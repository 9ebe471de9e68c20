"""Face encodings in Redis, the source of truth, split into partitions that fit Redis Cluster.

Every image's faces live in one partition, chosen from its SHA-256; every key of a partition
carries the same hash tag (:mod:`imagescan.keys`), so each script below touches one slot:

* ``state``     hash: ``seq`` the partition's last face number, ``erased`` its erasures so far,
                ``stamp`` the newest face's number and the Redis time it was stored at (no
                image is named: an erased image leaves no trace here);
* ``records``   hash, face id -> owner SHA-256 (64 hex) + 128 little-endian float32;
* ``image_ids`` hash, owner SHA-256 -> its face ids: makes adding idempotent, and lets an
                erasure find faces even when the image's own face list was never written;
* ``erasures``  sorted set, erased face id -> the erasure number that removed it.

A face id is ``number * PARTITIONS + partition``: unique, and it names its partition. The
script that hands out a number writes the record in the same atomic step, so once a
partition's ``seq`` reads N every face numbered <= N in it is readable (or erased): an index
that has applied a partition up to N only needs the faces after N.

PARTITIONS is part of the stored data (it is in every id): it never changes for a deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import keys
from .facematrix import ENCODING_DTYPE, ENCODING_SIZE, encoding_to_bytes

PARTITIONS = 64
OWNER_SIZE = 64  # hex SHA-256 in front of the encoding bytes
RECORD_SIZE = OWNER_SIZE + ENCODING_DTYPE.itemsize * ENCODING_SIZE
KEPT_ERASURES = 100_000  # erased face ids listed per partition; an index further behind reloads it
RANGE_CHUNK = 2000  # face numbers per range read: ~1 MB reply, Redis busy a few ms

# KEYS: state, records, image ids. ARGV: sha256, partitions, partition, then one encoding per face.
# Returns the image's face ids, comma-separated: the ones added now, or those it already had.
_ADD_LUA = """
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then return existing end
local ids = {}
for i = 4, #ARGV do
    local number = redis.call('HINCRBY', KEYS[1], 'seq', 1)
    local id = number * tonumber(ARGV[2]) + tonumber(ARGV[3])
    redis.call('HSET', KEYS[2], id, ARGV[1] .. ARGV[i])
    ids[#ids + 1] = id
end
if #ids > 0 then
    local now = redis.call('TIME')
    redis.call('HSET', KEYS[1], 'stamp', ids[#ids] .. '@' .. now[1] .. '.' .. now[2])
end
local joined = table.concat(ids, ',')
redis.call('HSET', KEYS[3], ARGV[1], joined)
return joined
"""

# KEYS: state, records, image ids, erasures. ARGV: sha256, erasures kept.
# Returns how many faces went; each is listed under a new erasure number for the indexes.
_REMOVE_LUA = """
local joined = redis.call('HGET', KEYS[3], ARGV[1])
if not joined then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
local ids = {}
for id in string.gmatch(joined, '[^,]+') do ids[#ids + 1] = id end
if #ids == 0 then return 0 end
redis.call('HDEL', KEYS[2], unpack(ids))
local n = redis.call('HINCRBY', KEYS[1], 'erased', 1)
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[4], n, id) end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', n - tonumber(ARGV[2]))
return #ids
"""

# KEYS: records. ARGV: first id, last id, id step, record size.
# The records present in that id range, as a count and one bulk string of records and one of
# ids: two large replies parse far faster in redis-py than HMGET arrays of thousands of items.
_RANGE_LUA = """
local ids = {}
for id = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) do ids[#ids + 1] = id end
local records = redis.call('HMGET', KEYS[1], unpack(ids))
local found_records, found_ids = {}, {}
for i = 1, #ids do
    if records[i] and string.len(records[i]) == tonumber(ARGV[4]) then
        found_records[#found_records + 1] = records[i]
        found_ids[#found_ids + 1] = ids[i]
    end
end
return {#found_ids, table.concat(found_records), table.concat(found_ids, ',')}
"""


class PartitionState(NamedTuple):
    seq: int  # the last face number handed out
    erased: int  # erasures so far
    stamp: str | None  # the newest face's number and time: tells a number handed out again


class FaceRows(NamedTuple):
    encodings: np.ndarray  # (n, 128) float32
    owners: list[str]
    face_ids: list[int]


def partition_of_owner(sha256: str) -> int:
    return int(sha256[:8], 16) % PARTITIONS


def partition_of_face(face_id: int) -> int:
    return int(face_id) % PARTITIONS


def face_id(partition: int, number: int) -> int:
    return number * PARTITIONS + partition


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class FaceStore:
    """The scripts and reads over the partitions; one per process (thread-safe like the client)."""

    def __init__(self, redis):
        self.redis = redis
        self._add = redis.register_script(_ADD_LUA)
        self._remove = redis.register_script(_REMOVE_LUA)
        self._range = redis.register_script(_RANGE_LUA)

    def add(self, sha256: str, encodings: Sequence[Sequence[float]]) -> list[int]:
        """Store the image's faces; returns their ids (the first ids again on a repeat)."""
        partition = partition_of_owner(sha256)
        named = keys.face_partition(partition)
        joined = self._add(
            keys=[named.state, named.records, named.image_ids],
            args=[sha256, PARTITIONS, partition, *(encoding_to_bytes(e) for e in encodings)],
        )
        return [int(i) for i in _text(joined).split(",") if i]

    def remove(self, sha256: str) -> int:
        """Erase the image's faces (all of them, listed or not); returns how many went."""
        partition = partition_of_owner(sha256)
        return int(self._remove(
            keys=list(keys.face_partition(partition)),  # state, records, image ids, erasures
            args=[sha256, KEPT_ERASURES],
        ))

    def states(self, partitions: Sequence[int]) -> list[PartitionState]:
        with self.redis.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.hmget(keys.face_partition(partition).state, "seq", "erased", "stamp")
            replies = pipe.execute()
        return [PartitionState(int(seq or 0), int(erased or 0), _text(stamp) if stamp else None)
                for seq, erased, stamp in replies]

    def owner_of(self, face: int) -> str | None:
        record = self.redis.hget(keys.face_partition(partition_of_face(face)).records, face)
        return _text(record[:OWNER_SIZE]) if record else None

    def rows(self, partition: int, first_number: int, last_number: int) -> FaceRows:
        """The faces numbered first..last (inclusive) still present in the partition."""
        count, raw_records, raw_ids = self._range(
            keys=[keys.face_partition(partition).records],
            args=[face_id(partition, first_number), face_id(partition, last_number), PARTITIONS, RECORD_SIZE],
        )
        if not count:
            return FaceRows(np.empty((0, ENCODING_SIZE), np.float32), [], [])
        records = np.frombuffer(raw_records, dtype=np.uint8).reshape(int(count), RECORD_SIZE)
        owners = [row.tobytes().decode() for row in records[:, :OWNER_SIZE]]
        encodings = records[:, OWNER_SIZE:].copy().view(ENCODING_DTYPE).reshape(-1, ENCODING_SIZE)
        return FaceRows(encodings, owners, [int(i) for i in _text(raw_ids).split(",")])

    def erased_between(self, partition: int, after: int, through: int) -> list[int]:
        """Ids of the faces the partition's erasures after..through removed."""
        found = self.redis.zrangebyscore(keys.face_partition(partition).erasures, after + 1, through)
        return [int(face) for face in found]

    def encodings(self, face_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The encodings of these faces that are still stored."""
        with self.redis.pipeline(transaction=False) as pipe:
            for face in face_ids:
                pipe.hget(keys.face_partition(partition_of_face(face)).records, face)
            records = pipe.execute()
        return {face: np.frombuffer(record[OWNER_SIZE:], dtype=ENCODING_DTYPE).astype(np.float32)
                for face, record in zip(face_ids, records) if record and len(record) == RECORD_SIZE}
