"""Face encodings as bytes, and the in-memory float32 matrix the face index searches.

The matrix grows by doubling and the query is one vectorised pass:
``|a-b|^2 = |a|^2 + |b|^2 - 2 a.b`` with a matrix-vector product, candidates re-checked
exactly in float64 so the float32 shortcut never changes an answer. Redis stays the source
of truth (:mod:`imagescan.faceindex`); this module never talks to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

ENCODING_SIZE = 128
ENCODING_DTYPE = np.dtype("<f4")
_INITIAL_CAPACITY = 1024


def encoding_to_bytes(encoding: Sequence[float]) -> bytes:
    vector = np.asarray(encoding, dtype=ENCODING_DTYPE)
    if vector.shape != (ENCODING_SIZE,):
        raise ValueError(f"a face encoding has {ENCODING_SIZE} values, got shape {vector.shape}")
    if not np.all(np.isfinite(vector)):
        raise ValueError("a face encoding must be finite")
    return vector.tobytes()


def encoding_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=ENCODING_DTYPE, count=ENCODING_SIZE)


class EncodingMatrix:
    """Append-only contiguous float32 matrix of encodings with their owners.

    Grows by doubling so adding n faces costs O(n) amortised copies, and keeps the
    squared norms beside the rows so a query is a single matrix-vector product.
    """

    def __init__(self, capacity: int = _INITIAL_CAPACITY):
        capacity = max(1, capacity)
        self._rows = np.empty((capacity, ENCODING_SIZE), dtype=np.float32)
        self._squared_norms = np.empty(capacity, dtype=np.float32)
        self._owner_index = np.empty(capacity, dtype=np.int32)
        self._face_ids = np.empty(capacity, dtype=np.int64)
        self._owners: list[str] = []  # distinct owners; _owner_index points into it
        self._owner_numbers: dict[str, int] = {}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, encodings: np.ndarray, owners: Sequence[str], face_ids: Sequence[int] | None = None) -> None:
        encodings = np.asarray(encodings, dtype=np.float32).reshape(-1, ENCODING_SIZE)
        count = len(encodings)
        if count != len(owners) or (face_ids is not None and count != len(face_ids)):
            raise ValueError("one owner (and face id) per encoding")
        self.reserve(self.size + count)
        end = self.size + count
        self._rows[self.size : end] = encodings
        self._squared_norms[self.size : end] = np.einsum("ij,ij->i", encodings, encodings)
        self._owner_index[self.size : end] = [self._owner_number(owner) for owner in owners]
        self._face_ids[self.size : end] = -1 if face_ids is None else face_ids
        self.size = end

    def remove_faces(self, face_ids: Iterable[int]) -> int:
        """Drop the rows of these face ids (erased faces); returns how many rows went."""
        wanted = np.fromiter(face_ids, dtype=np.int64)
        if self.size == 0 or wanted.size == 0:
            return 0
        holes = np.flatnonzero(np.isin(self._face_ids[: self.size], wanted))
        if holes.size == 0:
            return 0
        # Rows have no order: the last rows move into the holes, O(removed) rather than O(size).
        kept = self.size - holes.size
        movers = np.setdiff1d(np.arange(kept, self.size), holes)
        targets = holes[holes < kept]
        for array in (self._rows, self._squared_norms, self._owner_index, self._face_ids):
            array[targets] = array[movers]
        self.size = kept
        return int(holes.size)

    def within(self, queries, tolerance: float, exclude_owner: str | None = None) -> dict[str, float]:
        """Owners having a face at euclidean distance <= tolerance from any query, with the best distance.

        ``queries`` is one encoding or a (k, 128) array: all of an image's faces are
        answered in one pass over the matrix, which is memory-bound at scale.
        """
        queries64 = np.asarray(queries, dtype=np.float64).reshape(-1, ENCODING_SIZE)
        if self.size == 0 or len(queries64) == 0:
            return {}
        queries32 = queries64.astype(np.float32)
        rows = self._rows[: self.size]
        squared = rows @ queries32.T  # (n, k) dot products
        squared *= -2.0
        squared += self._squared_norms[: self.size, None]
        squared += np.einsum("ij,ij->i", queries32, queries32)[None, :]
        # float32 rounding is ~1e-6 here; the slack keeps every true hit, the exact pass drops extras
        candidate_rows, candidate_queries = np.nonzero(squared <= np.float32(tolerance * tolerance + 1e-3))
        if candidate_rows.size == 0:
            return {}
        distances = np.linalg.norm(
            rows[candidate_rows].astype(np.float64) - queries64[candidate_queries], axis=1
        )
        best: dict[str, float] = {}
        exclude_number = self._owner_numbers.get(exclude_owner, -1) if exclude_owner is not None else -1
        for row, distance in zip(candidate_rows.tolist(), distances.tolist()):
            if distance > tolerance:
                continue
            number = int(self._owner_index[row])
            if number == exclude_number:
                continue
            owner = self._owners[number]
            if distance < best.get(owner, float("inf")):
                best[owner] = distance
        return best

    def contents(self) -> tuple[np.ndarray, list[str], np.ndarray]:
        """The live rows, the owner of each and the face id of each (a copy-free view of the rows)."""
        owners = [self._owners[number] for number in self._owner_index[: self.size].tolist()]
        return self._rows[: self.size], owners, self._face_ids[: self.size]

    def save(self, path) -> None:
        """Write the live rows, their owners and face ids to one .npz file."""
        size = self.size
        np.savez(path, rows=self._rows[:size], owner_index=self._owner_index[:size],
                 face_ids=self._face_ids[:size], owners=np.asarray(self._owners, dtype=str))

    @classmethod
    def load(cls, path) -> EncodingMatrix:
        with np.load(path) as saved:
            owners = saved["owners"].tolist()
            matrix = cls(len(saved["rows"]))
            matrix.append(saved["rows"], [owners[i] for i in saved["owner_index"].tolist()], saved["face_ids"])
        return matrix

    def _owner_number(self, owner: str) -> int:
        number = self._owner_numbers.get(owner)
        if number is None:
            number = self._owner_numbers[owner] = len(self._owners)
            self._owners.append(owner)
        return number

    def reserve(self, needed: int) -> None:
        """Room for ``needed`` rows in all (the next doubling at or past it)."""
        capacity = len(self._rows)
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        self._rows = _grown(self._rows, capacity, self.size)
        self._squared_norms = _grown(self._squared_norms, capacity, self.size)
        self._owner_index = _grown(self._owner_index, capacity, self.size)
        self._face_ids = _grown(self._face_ids, capacity, self.size)


def _grown(array: np.ndarray, capacity: int, used: int) -> np.ndarray:
    bigger = np.empty((capacity, *array.shape[1:]), dtype=array.dtype)
    bigger[:used] = array[:used]
    return bigger

