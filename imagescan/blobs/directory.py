"""`BLOB_STORE=dir`: one file per blob under BLOB_DIR/ab/cd/<sha256>.

A write goes to a temporary file in the final directory, is flushed to disk (fsync), renamed
over the final name and the directory entry flushed too; the temporary file is removed when
anything fails. So a reader sees either no file or the whole file: a crash between write and
rename leaves only a `.tmp-*` file, which is never served, and two writers of one digest
each rename a complete copy of the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import base

TEMP_PREFIX = ".tmp-"


def _unavailable(action: str, exc: OSError) -> base.BlobStoreUnavailable:
    reason = errno.errorcode.get(exc.errno or 0, "error")
    return base.BlobStoreUnavailable(exc.errno, f"blob directory: cannot {action} ({reason}): {exc.strerror}")


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectoryBlobStore:
    def __init__(self, root: str | os.PathLike):
        if not str(root):
            raise ValueError("the blob directory needs a path (BLOB_DIR)")
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        sha256 = base.checked(sha256)
        return self._root / sha256[:2] / sha256[2:4] / sha256

    def put(self, sha256: str, data: bytes, content_type: str = base.DEFAULT_CONTENT_TYPE) -> None:
        path = self.path(sha256)
        if path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_atomically(path, data)
        except OSError as exc:
            raise _unavailable("write", exc) from exc

    @staticmethod
    def _write_atomically(path: Path, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(path.parent)

    def get(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unavailable("read", exc) from exc

    def stat(self, sha256: str) -> base.BlobInfo | None:
        try:
            with open(self.path(sha256), "rb") as blob:
                return base.BlobInfo(os.fstat(blob.fileno()).st_size, base.sniff_content_type(blob.read(base.HEAD_BYTES)))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unavailable("read", exc) from exc

    def open(self, sha256: str, start: int = 0, stop: int | None = None) -> base.BlobStream | None:
        try:
            blob = open(self.path(sha256), "rb")  # noqa: SIM115 - closed by the BlobStream
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unavailable("read", exc) from exc
        size = os.fstat(blob.fileno()).st_size
        stop = size if stop is None else min(stop, size)
        blob.seek(start)
        return base.BlobStream(self._chunks(blob, stop - start), max(stop - start, 0), blob.close)

    @staticmethod
    def _chunks(blob, remaining: int) -> Iterator[bytes]:
        while remaining > 0:
            chunk = blob.read(min(base.CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def delete(self, sha256: str) -> None:
        path = self.path(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _unavailable("delete", exc) from exc
        _fsync_directory(path.parent)

    def digests(self) -> Iterator[str]:
        for first in sorted(self._root.iterdir()):
            if not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if second.is_dir():
                    yield from sorted(p.name for p in second.iterdir() if base.is_digest(p.name))
