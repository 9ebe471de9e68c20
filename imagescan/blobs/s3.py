"""`BLOB_STORE=s3`: any S3-compatible object store (AWS S3, Google Cloud Storage through its
S3 interoperability, MinIO, Ceph RGW), through boto3.

Objects are named S3_PREFIX + <sha256> in S3_BUCKET and carry their content type. Credentials
come from boto3's usual chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (from a Kubernetes
Secret, say), a profile, or the machine's role. Unreachable, timing out, refusing (403, 5xx,
no such bucket): BlobStoreUnavailable.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..config import Settings
from . import base

_MISSING = {"404", "NoSuchKey", "NotFound"}


def _missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _MISSING


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str = "", region: str = "",
                 timeout: float = 5.0):
        self.bucket = bucket
        self.prefix = prefix
        config = Config(
            connect_timeout=timeout, read_timeout=timeout,
            retries={"mode": "standard", "max_attempts": 2},  # a caller that must wait retries itself
            # Path-style URLs and checksums only where required: what every S3-compatible
            # store understands (GCS and older MinIO refuse boto3's default CRC checksums).
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._s3 = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        return cls(settings.s3_bucket, settings.s3_prefix, endpoint_url=settings.s3_endpoint_url,
                   region=settings.s3_region, timeout=settings.network_timeout)

    def key(self, sha256: str) -> str:
        return self.prefix + base.checked(sha256)

    def _call(self, operation: str, **params):
        """One S3 request; None when the object is not there."""
        try:
            return getattr(self._s3, operation)(Bucket=self.bucket, **params)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise base.BlobStoreUnavailable(f"object store refused {operation}: {exc}") from exc
        except BotoCoreError as exc:
            raise base.BlobStoreUnavailable(f"object store unreachable ({operation}): {exc}") from exc

    def put(self, sha256: str, data: bytes, content_type: str = base.DEFAULT_CONTENT_TYPE) -> None:
        if self.exists(sha256):
            return  # content-addressed: the same bytes are there already
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        self._call("put_object", Key=self.key(sha256), Body=data, ContentType=content_type,
                   ContentMD5=md5)  # the store checks the bytes arrived whole

    def get(self, sha256: str) -> bytes | None:
        stream = self.open(sha256)
        return None if stream is None else stream.read_all()

    def stat(self, sha256: str) -> base.BlobInfo | None:
        head = self._call("head_object", Key=self.key(sha256))
        if head is None:
            return None
        return base.BlobInfo(head["ContentLength"], head.get("ContentType") or base.DEFAULT_CONTENT_TYPE)

    def open(self, sha256: str, start: int = 0, stop: int | None = None) -> base.BlobStream | None:
        params = {"Key": self.key(sha256)}
        if start or stop is not None:
            if stop is not None and stop <= start:
                return base.BlobStream((), 0)
            params["Range"] = f"bytes={start}-{'' if stop is None else stop - 1}"
        reply = self._call("get_object", **params)
        if reply is None:
            return None
        body = reply["Body"]
        return base.BlobStream(self._chunks(body), reply["ContentLength"], body.close)

    @staticmethod
    def _chunks(body) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(base.CHUNK_BYTES)
        except BotoCoreError as exc:
            raise base.BlobStoreUnavailable(f"object store failed halfway through a blob: {exc}") from exc

    def exists(self, sha256: str) -> bool:
        return self._call("head_object", Key=self.key(sha256)) is not None

    def delete(self, sha256: str) -> None:
        self._call("delete_object", Key=self.key(sha256))  # S3 deletes idempotently

    def digests(self) -> Iterator[str]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    name = item["Key"][len(self.prefix):]
                    if base.is_digest(name):
                        yield name
        except (ClientError, BotoCoreError) as exc:
            raise base.BlobStoreUnavailable(f"object store cannot list {self.bucket}: {exc}") from exc
