"""The vectors of one face-search shard: exact float32 while small, an IVF index from faiss when large.

A shard answers range queries ("every face within the tolerance of this encoding") over the
faces it holds. Below ``ivf_from`` faces the exact :class:`EncodingMatrix` is both fast and
exact; from there the shard trains a faiss ``IndexIVFFlat`` on the faces it holds and moves
them into it. IVF-Flat keeps every float32 vector and computes exact distances inside the
lists it probes: the only answers it can miss are faces in lists it does not probe, which
``bench/face_search.py`` measures as recall against the exact search.

Rows are numbered in the order they arrive; faiss knows a row by that number, and two arrays
beside it give each row's face id (-1 once erased) and its owner (the image's SHA-256, kept as
32 raw bytes: 10^7 owners as Python strings would weigh a gigabyte).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .facematrix import ENCODING_SIZE, EncodingMatrix

DEFAULT_IVF_FROM = 200_000  # faces; below, exact search answers in a few ms anyway
DEFAULT_IVF_PROBES = 128  # of the default 2,828 lists: 4.5%; 4.8% gave recall 0.994 at 10^6 (bench/face_search.py)


def ivf_lists_for(size: int) -> int:
    """Lists for a shard of `size` faces: about 2*sqrt(size) keeps each list a few thousand rows."""
    return int(max(64, min(65_536, 2 * np.sqrt(max(size, 1)))))


class IvfVectors:
    """Faces in a faiss IndexIVFFlat (L2), with their face ids and owners."""

    kind = "ivf"

    def __init__(self, index, probes: int = DEFAULT_IVF_PROBES):
        self.index = index
        self.index.nprobe = probes
        self.face_ids = np.empty(0, dtype=np.int64)
        self.owners = np.empty((0, 32), dtype=np.uint8)
        self.size = 0  # rows handed out, erased ones included
        self.live = 0

    @classmethod
    def trained_on(cls, sample: np.ndarray, lists: int, probes: int = DEFAULT_IVF_PROBES) -> IvfVectors:
        import faiss  # only shards large enough for IVF need it

        lists = min(lists, max(1, len(sample) // 30))  # faiss wants some 30-40 training points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(ENCODING_SIZE), ENCODING_SIZE, lists)
        index.cp.niter = 10  # k-means rounds: 10 place the lists about as well as the default 25
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(index, probes)

    def __len__(self) -> int:
        return self.live

    def add(self, encodings: np.ndarray, owners: Sequence[str], face_ids: Sequence[int]) -> None:
        encodings = np.ascontiguousarray(encodings, dtype=np.float32).reshape(-1, ENCODING_SIZE)
        count = len(encodings)
        self._reserve(self.size + count)
        rows = np.arange(self.size, self.size + count, dtype=np.int64)
        self.face_ids[rows] = np.asarray(face_ids, dtype=np.int64)
        self.owners[rows] = np.frombuffer(b"".join(bytes.fromhex(o) for o in owners), np.uint8).reshape(-1, 32)
        self.index.add_with_ids(encodings, rows)
        self.size += count
        self.live += count

    def face_ids_held(self) -> np.ndarray:
        ids = self.face_ids[: self.size]
        return ids[ids >= 0]

    def remove(self, face_ids: Iterable[int]) -> int:
        wanted = np.fromiter(face_ids, dtype=np.int64)
        rows = np.flatnonzero(np.isin(self.face_ids[: self.size], wanted)) if wanted.size else wanted
        if rows.size == 0:
            return 0
        self.index.remove_ids(rows.astype(np.int64))
        self.face_ids[rows] = -1
        self.live -= int(rows.size)
        return int(rows.size)

    def within(self, queries, tolerance: float, exclude_owner: str | None = None) -> dict[str, float]:
        queries64 = np.asarray(queries, dtype=np.float64).reshape(-1, ENCODING_SIZE)
        if self.live == 0 or len(queries64) == 0:
            return {}
        # IVF-Flat computes these squared distances from the stored float32 vectors, exactly as
        # the exact matrix's first pass does; only the float64 re-check is skipped.
        _, squared, rows = self.index.range_search(queries64.astype(np.float32), tolerance * tolerance)
        if rows.size == 0:
            return {}
        exclude = bytes.fromhex(exclude_owner) if exclude_owner else None
        best: dict[str, float] = {}
        for row, distance in zip(rows.tolist(), np.sqrt(squared.astype(np.float64)).tolist()):
            owner = self.owners[row].tobytes()
            if distance > tolerance or owner == exclude:
                continue
            key = owner.hex()
            if distance < best.get(key, float("inf")):
                best[key] = distance
        return best

    def save(self, directory: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(directory / "ivf.faiss"))
        np.save(directory / "face_ids.npy", self.face_ids[: self.size])
        np.save(directory / "owners.npy", self.owners[: self.size])

    @classmethod
    def load(cls, directory: Path, probes: int) -> IvfVectors:
        import faiss

        vectors = cls(faiss.read_index(str(directory / "ivf.faiss")), probes)
        vectors.face_ids = np.load(directory / "face_ids.npy")
        vectors.owners = np.load(directory / "owners.npy")
        vectors.size = len(vectors.face_ids)
        vectors.live = int(np.count_nonzero(vectors.face_ids >= 0))
        return vectors

    def _reserve(self, needed: int) -> None:
        capacity = len(self.face_ids)
        if needed <= capacity:
            return
        capacity = max(needed, 2 * capacity, 1024)
        face_ids = np.full(capacity, -1, dtype=np.int64)
        face_ids[: self.size] = self.face_ids[: self.size]
        owners = np.zeros((capacity, 32), dtype=np.uint8)
        owners[: self.size] = self.owners[: self.size]
        self.face_ids, self.owners = face_ids, owners


class ExactVectors:
    """Faces in the exact float32 matrix (small shards, tests, one-process installs)."""

    kind = "exact"

    def __init__(self, matrix: EncodingMatrix | None = None):
        self.matrix = matrix if matrix is not None else EncodingMatrix()

    def __len__(self) -> int:
        return len(self.matrix)

    def add(self, encodings: np.ndarray, owners: Sequence[str], face_ids: Sequence[int]) -> None:
        self.matrix.append(encodings, owners, face_ids)

    def face_ids_held(self) -> np.ndarray:
        return self.matrix.contents()[2].copy()

    def remove(self, face_ids: Iterable[int]) -> int:
        return self.matrix.remove_faces(face_ids)

    def within(self, queries, tolerance: float, exclude_owner: str | None = None) -> dict[str, float]:
        return self.matrix.within(queries, tolerance, exclude_owner)

    def save(self, directory: Path) -> None:
        self.matrix.save(directory / "exact.npz")

    @classmethod
    def load(cls, directory: Path) -> ExactVectors:
        return cls(EncodingMatrix.load(directory / "exact.npz"))


class ShardVectors:
    """Exact until ``ivf_from`` faces, then IVF (once: the lists are trained on the faces held then)."""

    def __init__(self, ivf_from: int = DEFAULT_IVF_FROM, probes: int = DEFAULT_IVF_PROBES, lists: int = 0):
        self.ivf_from, self.probes, self.lists = ivf_from, probes, lists
        self.vectors: ExactVectors | IvfVectors = ExactVectors()

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, encodings: np.ndarray, owners: Sequence[str], face_ids: Sequence[int]) -> None:
        self.vectors.add(encodings, owners, face_ids)
        if self.ivf_from and self.vectors.kind == "exact" and len(self.vectors) >= self.ivf_from:
            self._move_to_ivf()

    def face_ids(self) -> np.ndarray:
        return self.vectors.face_ids_held()

    def remove(self, face_ids: Iterable[int]) -> int:
        return self.vectors.remove(face_ids)

    def within(self, queries, tolerance: float, exclude_owner: str | None = None) -> dict[str, float]:
        return self.vectors.within(queries, tolerance, exclude_owner)

    def _move_to_ivf(self) -> None:
        rows, owners, face_ids = self.vectors.matrix.contents()
        ivf = IvfVectors.trained_on(rows, self.lists or ivf_lists_for(len(rows) * 10), self.probes)
        ivf.add(rows, owners, face_ids)
        self.vectors = ivf

    def save(self, directory: Path) -> None:
        (directory / "kind.json").write_text(json.dumps({"kind": self.vectors.kind}))
        self.vectors.save(directory)

    def load(self, directory: Path) -> None:
        kind = json.loads((directory / "kind.json").read_text())["kind"]
        self.vectors = IvfVectors.load(directory, self.probes) if kind == "ivf" else ExactVectors.load(directory)
