"""`python -m imagescan.blobs.copy --from redis --to dir`: copy every blob to another store.

Both stores are configured from the environment as usual (BLOB_DIR, S3_BUCKET, REDIS_HOST, ...);
only their kinds are named here. A blob the destination already holds is skipped (names are
content digests: same name, same bytes), so after an interruption running it again copies
only what is missing. Every blob is checked against its name before it is written. The
source is left as it is; point BLOB_STORE at the destination once the copy is complete.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from dataclasses import dataclass

from ..config import Settings
from . import BACKENDS, HEAD_BYTES, BlobStore, open_blob_store, sniff_content_type

log = logging.getLogger("imagescan.blobs.copy")


@dataclass
class CopyReport:
    copied: int = 0
    skipped: int = 0  # already in the destination
    corrupt: int = 0  # bytes that do not match their name: not copied
    vanished: int = 0  # listed, then gone before it could be read

    def __str__(self) -> str:
        return (f"copied {self.copied}, already there {self.skipped}, "
                f"corrupt {self.corrupt}, vanished {self.vanished}")


def copy_blobs(source: BlobStore, destination: BlobStore, progress=lambda report: None) -> CopyReport:
    report = CopyReport()
    for sha256 in source.digests():
        if destination.exists(sha256):
            report.skipped += 1
            continue
        data = source.get(sha256)
        if data is None:
            report.vanished += 1
        elif hashlib.sha256(data).hexdigest() != sha256:
            log.error("blob %s does not match its name; not copied", sha256)
            report.corrupt += 1
        else:
            destination.put(sha256, data, sniff_content_type(data[:HEAD_BYTES]))
            report.copied += 1
        progress(report)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagescan.blobs.copy", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", choices=BACKENDS, required=True)
    parser.add_argument("--to", dest="destination", choices=BACKENDS, required=True)
    args = parser.parse_args(argv)
    if args.source == args.destination:
        parser.error("--from and --to name the same kind of store")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings.from_env()
    source = open_blob_store(settings, kind=args.source)
    destination = open_blob_store(settings, kind=args.destination)

    def progress(report: CopyReport) -> None:
        if report.copied and report.copied % 100 == 0:
            log.info("%s ...", report)

    report = copy_blobs(source, destination, progress)
    log.info("%s -> %s: %s", args.source, args.destination, report)
    return 1 if report.corrupt else 0


if __name__ == "__main__":
    sys.exit(main())
