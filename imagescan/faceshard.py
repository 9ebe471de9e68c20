"""A searchable copy of some face partitions, kept up to date from Redis, saved to disk.

One search-tier process holds the partitions of its shard; a worker with the in-process face
search holds all of them. Before each search the copy catches up with Redis (one pipelined
HMGET per partition, then only the faces and erasures it has not applied yet), so a face
stored before the search began is always found (imagescan.faceindex explains why that keeps
two photos processed at the same moment matching).

A snapshot (``save``) holds the vectors and, per partition, the last face number and erasure
number applied. ``restore`` loads it and the next catch-up reads only what came after: a
restart reads the faces added since the snapshot, not every encoding.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .facestore import KEPT_ERASURES, PARTITIONS, RANGE_CHUNK, FaceStore, PartitionState, face_id
from .facevectors import ShardVectors

log = logging.getLogger("imagescan.faceshard")
SNAPSHOT = "snapshot"


@dataclass
class Applied:
    """How far one partition is applied: its face numbers, its erasures, the stamp of its newest
    face, and the owner of face number `seq` when it was loaded (None: erased before)."""

    seq: int = 0
    erased: int | None = None  # None: not loaded yet (erasures before the first load are moot)
    stamp: str | None = None
    owner: str | None = None


class ShardIndex:
    def __init__(self, store: FaceStore, partitions: Sequence[int], vectors: ShardVectors | None = None):
        self.store = store
        self.partitions = sorted(partitions)
        self.vectors = vectors if vectors is not None else ShardVectors()
        self.applied = {partition: Applied() for partition in self.partitions}
        self.lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.vectors)

    def catch_up(self) -> int:
        """Apply every face added and erased since the last catch-up; returns how many faces came."""
        with self.lock:
            states = self.store.states(self.partitions)
            return sum(self._catch_up(partition, state) for partition, state in zip(self.partitions, states))

    def search(self, queries, tolerance: float, exclude_owner: str | None = None) -> dict[str, float]:
        """Owners with a face within tolerance of any query (after catching up), best distance each."""
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, 128)
        with self.lock:
            self.catch_up()
            return self.vectors.within(queries, tolerance, exclude_owner) if len(queries) else {}

    def _catch_up(self, partition: int, state: PartitionState) -> int:
        applied = self.applied[partition]
        if applied.erased is None:
            applied.erased = state.erased
        if self._went_back(partition, applied, state):
            # Redis restored from an older snapshot: numbers are handed out again and some faces
            # are gone, so the partition is loaded afresh. (The newest face being erased also
            # lands here: rare, and a reload is always correct.)
            log.warning("face partition %d went back to %d (had %d): reloading it", partition, state.seq, applied.seq)
            self._drop_partition(partition)
            applied.seq, applied.stamp, applied.owner = 0, None, None
        loaded = self._load(partition, applied, state)
        self._apply_erasures(partition, applied, state)
        return loaded

    def _went_back(self, partition: int, applied: Applied, state: PartitionState) -> bool:
        if state.seq < applied.seq:
            return True
        if state.seq == applied.seq:
            return state.stamp != applied.stamp
        return applied.seq > 0 and self.store.owner_of(face_id(partition, applied.seq)) != applied.owner

    def _load(self, partition: int, applied: Applied, state: PartitionState) -> int:
        loaded = 0
        while applied.seq < state.seq:
            last = min(state.seq, applied.seq + RANGE_CHUNK)
            rows = self.store.rows(partition, applied.seq + 1, last)
            if rows.face_ids:
                self.vectors.add(rows.encodings, rows.owners, rows.face_ids)
                loaded += len(rows.face_ids)
            applied.owner = rows.owners[-1] if rows.face_ids and rows.face_ids[-1] == face_id(partition, last) else None
            applied.seq = last
        if applied.seq == state.seq:
            applied.stamp = state.stamp  # read with seq in one command: the stamp of face number seq
        return loaded

    def _apply_erasures(self, partition: int, applied: Applied, state: PartitionState) -> None:
        if state.erased == applied.erased:
            return
        if state.erased < applied.erased or state.erased - applied.erased > KEPT_ERASURES:
            self._drop_partition(partition)  # the erasure list no longer reaches back: reload
            applied.seq, applied.stamp, applied.owner, applied.erased = 0, None, None, state.erased
            self._load(partition, applied, state)
            return
        self.vectors.remove(self.store.erased_between(partition, applied.erased, state.erased))
        applied.erased = state.erased

    def _drop_partition(self, partition: int) -> None:
        ids = self.vectors.face_ids()
        self.vectors.remove(ids[ids % PARTITIONS == partition].tolist())

    # -- snapshots ------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the vectors and how far each partition is applied; the old snapshot is replaced whole."""
        directory = Path(directory)
        fresh, current = directory / f"{SNAPSHOT}.new", directory / SNAPSHOT
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        with self.lock:
            self.vectors.save(fresh)
            applied = {str(p): asdict(a) for p, a in self.applied.items()}
        (fresh / "applied.json").write_text(json.dumps({"partitions": self.partitions, "applied": applied}))
        old = directory / f"{SNAPSHOT}.old"
        shutil.rmtree(old, ignore_errors=True)
        if current.exists():
            os.rename(current, old)
        os.rename(fresh, current)
        shutil.rmtree(old, ignore_errors=True)

    def restore(self, directory: Path) -> bool:
        """Load the snapshot if there is one for these partitions; False when starting empty."""
        saved = Path(directory) / SNAPSHOT
        try:
            described = json.loads((saved / "applied.json").read_text())
        except (OSError, ValueError):
            return False
        if described["partitions"] != self.partitions:
            log.warning("the snapshot in %s holds other partitions: starting empty", directory)
            return False
        with self.lock:
            try:
                self.vectors.load(saved)
            except Exception as error:  # noqa: BLE001 (any damage: Redis has every face, start empty)
                log.warning("the snapshot in %s cannot be read (%r): starting empty", directory, error)
                self.vectors = ShardVectors(self.vectors.ivf_from, self.vectors.probes, self.vectors.lists)
                return False
            self.applied = {int(p): Applied(**a) for p, a in described["applied"].items()}
        return True
