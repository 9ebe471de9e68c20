"""Blob stores keep originals and job outputs, content-addressed by SHA-256.

A blob's name is always the SHA-256 of its bytes: nothing is ever written under a name a
client chose, and writing the same name twice writes the same bytes (so every `put` is
idempotent and concurrent writers of one digest cannot disagree). Backends, chosen by
BLOB_STORE, one per module:

- `dir` (imagescan.blobs.directory): files under BLOB_DIR; the local runner's default.
- `s3` (imagescan.blobs.s3): any S3-compatible object store; the Kubernetes default.
- `redis` (imagescan.blobs.redis_store): Redis strings; only for tiny deployments, since every
  byte of every photo then lives in Redis memory and its append-only file.

Every backend raises BlobStoreUnavailable when the store cannot be reached or refuses a
request: the REST answers 503 + Retry-After, and a worker waits and retries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import redis

from ..config import Settings

CHUNK_BYTES = 1024 * 1024  # streamed reads hand out at most this much at a time
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobStoreUnavailable(OSError):
    """The store is unreachable, full or refusing: worth retrying later, not the caller's fault."""


def checked(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise ValueError("a blob is named by a lower-case SHA-256 hex digest")
    return sha256


def is_digest(name: str) -> bool:
    return bool(_SHA256.match(name))


@dataclass(frozen=True)
class BlobInfo:
    size: int
    content_type: str


class BlobStream:
    """Chunks of one blob read on demand; `close()` releases the file or connection.

    Handed to werkzeug as a response body, which calls `close()` when the response ends,
    also when the client goes away halfway.
    """

    def __init__(self, chunks: Iterable[bytes], length: int, close=lambda: None):
        self._chunks = iter(chunks)
        self.length = length  # bytes the chunks add up to
        self._close = close

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._close()

    def read_all(self) -> bytes:
        try:
            return b"".join(self._chunks)
        finally:
            self.close()


class BlobStore(Protocol):
    def put(self, sha256: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
        """Store these bytes (whose SHA-256 is `sha256`); a no-op when already stored."""

    def get(self, sha256: str) -> bytes | None:
        """All the bytes (one copy in memory), or None when not stored."""

    def stat(self, sha256: str) -> BlobInfo | None: ...

    def open(self, sha256: str, start: int = 0, stop: int | None = None) -> BlobStream | None:
        """Bytes [start, stop) streamed in chunks of at most CHUNK_BYTES, or None when not stored."""

    def exists(self, sha256: str) -> bool: ...

    def delete(self, sha256: str) -> None:
        """Remove the blob; no error when it is not there."""

    def digests(self) -> Iterator[str]:
        """The name of every stored blob (for copying a store to another)."""


def sniff_content_type(head: bytes) -> str:
    """Content type of an accepted image from its first bytes (magic numbers of ACCEPTED_FORMATS)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM"):
        return "image/bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    return DEFAULT_CONTENT_TYPE


BACKENDS = ("dir", "s3", "redis")


def open_blob_store(settings: Settings, client: redis.Redis | None = None, kind: str | None = None) -> BlobStore:
    """The store named by `kind` (default: BLOB_STORE), configured from the settings."""
    kind = kind or settings.blob_store
    if kind == "dir":
        from .directory import DirectoryBlobStore

        return DirectoryBlobStore(settings.blob_dir)
    if kind == "s3":
        from .s3 import S3BlobStore

        return S3BlobStore.from_settings(settings)
    if kind == "redis":
        from .redis_store import RedisBlobStore

        if client is None:
            from ..store import connect_redis

            client = connect_redis(settings)
        return RedisBlobStore(client)
    raise ValueError(f"unknown blob store {kind!r}; one of {', '.join(BACKENDS)}")


# The names the code base used before the package split.
from .directory import DirectoryBlobStore
from .redis_store import RedisBlobStore

__all__ = [
    "BACKENDS",
    "CHUNK_BYTES",
    "DEFAULT_CONTENT_TYPE",
    "BlobInfo",
    "BlobStore",
    "BlobStoreUnavailable",
    "BlobStream",
    "DirectoryBlobStore",
    "RedisBlobStore",
    "checked",
    "open_blob_store",
]
