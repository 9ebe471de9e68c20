"""What every blob store backend shares: the names of blobs, what a read hands out, the errors.

The backends import this module (`from . import base`) rather than a list of its names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

CHUNK_BYTES = 1024 * 1024  # streamed reads hand out at most this much at a time
DEFAULT_CONTENT_TYPE = "application/octet-stream"
HEAD_BYTES = 16  # the first bytes sniff_content_type needs
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
