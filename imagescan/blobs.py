"""Blob stores keep originals and job outputs, content-addressed by SHA-256.

A blob's name is always the SHA-256 of its bytes: nothing is ever written under a name
a client chose. Backends: Redis (default, simplest to run) and a directory (for a volume).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

import redis

from . import keys
from .config import Settings

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _checked(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError("a blob is named by a lower-case SHA-256 hex digest")
    return sha256


class BlobStore(Protocol):
    def put(self, sha256: str, data: bytes) -> None: ...

    def get(self, sha256: str) -> bytes | None: ...

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None: ...


class RedisBlobStore:
    """Each blob is one Redis string: memory cost is the image size plus about 100 bytes."""

    def __init__(self, client: redis.Redis):
        self._redis = client

    def put(self, sha256: str, data: bytes) -> None:
        # SET NX: content-addressed, so an existing blob is already these bytes.
        self._redis.set(keys.blob(_checked(sha256)), data, nx=True)

    def get(self, sha256: str) -> bytes | None:
        return self._redis.get(keys.blob(_checked(sha256)))

    def exists(self, sha256: str) -> bool:
        return bool(self._redis.exists(keys.blob(_checked(sha256))))

    def delete(self, sha256: str) -> None:
        self._redis.delete(keys.blob(_checked(sha256)))


class DirectoryBlobStore:
    """Files under root/ab/cd/<sha256>, written to a temporary name then renamed (atomic)."""

    def __init__(self, root: str | os.PathLike):
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        sha256 = _checked(sha256)
        return self._root / sha256[:2] / sha256[2:4] / sha256

    def put(self, sha256: str, data: bytes) -> None:
        path = self._path(sha256)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)

    def get(self, sha256: str) -> bytes | None:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)


def open_blob_store(settings: Settings, client: redis.Redis) -> BlobStore:
    if settings.blob_store == "dir":
        return DirectoryBlobStore(settings.blob_dir)
    return RedisBlobStore(client)
