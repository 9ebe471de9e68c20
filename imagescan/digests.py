"""Digests of image bytes. One image is keyed by SHA-256; MD5 and SHA-224 are aliases."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_HEX = re.compile(r"^[0-9a-f]+$")
# hex length -> digest kind
_KINDS = {32: "md5", 56: "sha224", 64: "sha256"}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Digests:
    md5: str
    sha224: str
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> Digests:
        """All three in one pass over the bytes, a cache-sized chunk at a time (hashlib lets
        other threads run while it hashes a chunk)."""
        md5, sha224, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha224(), hashlib.sha256()
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            chunk = view[start:start + _CHUNK]
            md5.update(chunk)
            sha224.update(chunk)
            sha256.update(chunk)
        return cls(md5=md5.hexdigest(), sha224=sha224.hexdigest(), sha256=sha256.hexdigest())

    def to_dict(self) -> dict:
        return {"md5": self.md5, "sha224": self.sha224, "sha256": self.sha256}


def digest_kind(text: str) -> str | None:
    """'md5', 'sha224' or 'sha256' for a well-formed hex digest, else None."""
    text = text.lower()
    if not _HEX.match(text):
        return None
    return _KINDS.get(len(text))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
