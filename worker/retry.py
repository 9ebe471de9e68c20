"""`python -m worker --retry DIGEST`: analyse a failed image again, deliberately.

Re-uploading a failed image queues nothing (a known poison image must not be a way to crash
workers at will), so a retry is an operator's act: it gives the image MAX_ATTEMPTS fresh
attempts, and no more.
"""

from __future__ import annotations

import sys

from imagescan import keys, topology
from imagescan.broker import BrokerUnavailable, Publisher
from imagescan.config import Settings
from imagescan.store import FAILED, open_storage


def retry_failed(settings: Settings, digest: str) -> int:
    client, store, _ = open_storage(settings)
    sha256 = store.resolve(digest)
    if sha256 is None:
        print(f"no image with digest {digest!r}", file=sys.stderr)
        return 1
    status = store.status(sha256)
    if status != FAILED:
        print(f"only a failed image is retried; {sha256} is {status}", file=sys.stderr)
        return 1
    client.delete(keys.work_attempts(topology.ANALYZE, sha256))
    publisher = Publisher(settings)
    try:
        publisher.publish(topology.ANALYZE, sha256=sha256)
    except BrokerUnavailable as exc:
        print(f"could not queue {sha256}: {exc}", file=sys.stderr)
        return 1
    finally:
        publisher.close()
    print(f"{sha256} queued again, with up to {settings.max_attempts} attempts")
    return 0
