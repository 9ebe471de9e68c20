"""Upgrading a Redis written with the key names before hash tags and shards (imagescan.migrate)."""

from __future__ import annotations

import json

from imagescan import keys, migrate
from imagescan.digests import Digests
from imagescan.store import ImageStore
from tests.imagefactory import jpeg

PLATE = "BA123CD"


def _old_layout(redis_client, digests: Digests) -> None:
    """One analysed image with a plate, as the previous release wrote it (names spelled out)."""
    sha = digests.sha256
    redis_client.hset(f"img:{sha}", mapping={
        "sha256": sha, "md5": digests.md5, "sha224": digests.sha224, "size": 10, "status": "done",
        "received_at": "2026-11-30T10:00:00Z", "format": "JPEG",
        "analysis": json.dumps({"plates": [{"plate": PLATE, "confidence": 0.9}]}),
    })
    redis_client.zadd(f"img:{sha}:names", {"car.jpg": 1})
    redis_client.set(f"alias:{digests.md5}", sha)
    redis_client.set(f"alias:{digests.sha224}", sha)
    redis_client.sadd(f"plate:{PLATE}", sha)
    redis_client.sadd("plates", PLATE)
    redis_client.hset("plate:fz:7", "X", PLATE)
    redis_client.zadd("images:recent", {sha: 1_764_496_800.0})
    redis_client.set("stats:uploads:2026-11-30", 1)
    redis_client.zadd("stats:formats", {"JPEG": 1})
    redis_client.set(f"attempts:analyze:{sha}", 1, ex=3600)
    redis_client.set(f"thumb:{sha}:128", b"jpeg")


def test_the_migration_renames_splits_and_is_idempotent(redis_client):
    redis_client.flushdb()  # only this old layout: what an earlier test left would count too
    digests = Digests.of(jpeg(seed=1))
    _old_layout(redis_client, digests)
    store = ImageStore(redis_client)
    assert store.resolve(digests.md5) is None  # the old names are not read

    done = migrate.migrate(redis_client)
    assert done["renamed"] == 9 and done["caches dropped"] == 1 and done["listed images"] == 1

    assert store.resolve(digests.md5) == store.resolve(digests.sha256) == digests.sha256
    assert store.analysis(digests.sha256)["names"] == ["car.jpg"]
    assert store.images_with_plate(PLATE) == [digests.sha256]
    assert store.known_plates() == [PLATE]
    assert store.uploads_per_day(today=None, days=3650) == {"2026-11-30": 1}
    assert store.top_formats() == [("JPEG", 1)]
    assert not [k for k in redis_client.scan_iter() if b"{" not in k]  # nothing left under an old name
    assert 0 < redis_client.ttl(keys.work_attempts("analyze", digests.sha256)) <= 3600

    assert migrate.migrate(redis_client) == {}  # a second run changes nothing
