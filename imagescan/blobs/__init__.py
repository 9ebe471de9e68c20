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

import redis

from ..config import Settings
from .base import (
    CHUNK_BYTES,
    DEFAULT_CONTENT_TYPE,
    HEAD_BYTES,
    BlobInfo,
    BlobStore,
    BlobStoreUnavailable,
    BlobStream,
    checked,
    is_digest,
    sniff_content_type,
)

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
    "HEAD_BYTES",
    "BlobInfo",
    "BlobStore",
    "BlobStoreUnavailable",
    "BlobStream",
    "DirectoryBlobStore",
    "RedisBlobStore",
    "checked",
    "is_digest",
    "open_blob_store",
    "sniff_content_type",
]
