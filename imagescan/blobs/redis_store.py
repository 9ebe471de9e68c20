"""`BLOB_STORE=redis`: each blob is one Redis string (the image size plus about 100 bytes).

Only for tiny deployments and tests: every byte of every photo stays in Redis memory and is
written again by each append-only-file rewrite.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis

from .. import keys
from . import base


class RedisBlobStore:
    def __init__(self, client: redis.Redis):
        self._redis = client

    def put(self, sha256: str, data: bytes, content_type: str = base.DEFAULT_CONTENT_TYPE) -> None:
        # SET NX: content-addressed, so an existing blob is already these bytes.
        self._redis.set(keys.blob(base.checked(sha256)), data, nx=True)

    def get(self, sha256: str) -> bytes | None:
        return self._redis.get(keys.blob(base.checked(sha256)))

    def stat(self, sha256: str) -> base.BlobInfo | None:
        key = keys.blob(base.checked(sha256))
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.strlen(key)
            pipe.getrange(key, 0, base.HEAD_BYTES - 1)
            size, head = pipe.execute()
        return base.BlobInfo(size, base.sniff_content_type(head)) if size else None

    def open(self, sha256: str, start: int = 0, stop: int | None = None) -> base.BlobStream | None:
        info = self.stat(sha256)
        if info is None:
            return None
        stop = info.size if stop is None else min(stop, info.size)
        return base.BlobStream(self._ranges(keys.blob(sha256), start, stop), max(stop - start, 0))

    def _ranges(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        for offset in range(start, stop, base.CHUNK_BYTES):
            try:
                yield self._redis.getrange(key, offset, min(offset + base.CHUNK_BYTES, stop) - 1)
            except redis.RedisError as exc:
                raise base.BlobStoreUnavailable(f"redis failed halfway through a blob: {exc!r}") from exc

    def exists(self, sha256: str) -> bool:
        return bool(self._redis.exists(keys.blob(base.checked(sha256))))

    def delete(self, sha256: str) -> None:
        self._redis.delete(keys.blob(base.checked(sha256)))

    def digests(self) -> Iterator[str]:
        prefix_length = len(keys.blob(""))
        for key in self._redis.scan_iter(match=keys.blob("*"), count=1000):
            name = key.decode()[prefix_length:]
            if base.is_digest(name):
                yield name
