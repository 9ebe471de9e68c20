"""The store on a Redis Cluster whose master dies: a replica takes over, the store answers again.

The workers' back-off (worker.handler.with_redis, tenacity) covers the seconds in between:
the client meets refused connections and CLUSTERDOWN, re-reads the slot map, and finds the
promoted replica.
"""

from __future__ import annotations

import time

import pytest

from imagescan import keys
from imagescan.digests import Digests
from imagescan.store import DONE, ImageStore, connect_redis
from tests.imagefactory import jpeg
from worker.handler import with_redis

pytestmark = [pytest.mark.clusters, pytest.mark.timeout(300)]


def _analysed(store: ImageStore, seed: int) -> Digests:
    digests = Digests.of(jpeg(seed=seed))
    store.register_upload(digests, 100, f"{seed}.jpg")
    store.save_analysis(digests.sha256, format="JPEG", width=8, height=8, camera_label="Canon - X",
                        results={"plates": [{"plate": f"KILL{seed}", "confidence": 0.9}]})
    return digests


def test_a_master_dies_and_the_store_keeps_answering_through_the_promoted_replica(redis_cluster, settings):
    redis_cluster.wait_healthy()
    redis_cluster.flush()
    store = ImageStore(connect_redis(settings.replace(redis_cluster=True, redis_host=redis_cluster.seed[0],
                                                      redis_port=redis_cluster.seed[1])))
    images = [_analysed(store, seed) for seed in range(12)]
    redis_cluster.wait_replicated()
    victim = images[0]
    master = redis_cluster.master_of(keys.image(victim.sha256))
    on_victim = [d for d in images if redis_cluster.master_of(keys.image(d.sha256)) is master]

    master.kill()
    killed_at = time.monotonic()
    deadline = killed_at + 60
    document = with_redis(lambda: store.analysis(victim.sha256), lambda: time.monotonic() > deadline,
                          what="read through a failover")
    recovered_after = time.monotonic() - killed_at
    print(f"answered again {recovered_after:.1f}s after the master was killed")

    assert document["status"] == DONE and document["plates"][0]["plate"] == "KILL0"
    assert redis_cluster.master_of(keys.image(victim.sha256)) is not master  # the replica took over
    for digests in on_victim:  # every acknowledged write to the dead master survived
        assert store.resolve(digests.md5) == digests.sha256
        assert store.images_with_plate(f"KILL{images.index(digests)}") == [digests.sha256]
    newcomer = with_redis(lambda: _analysed(store, 99), lambda: time.monotonic() > deadline, what="write")
    assert store.status(newcomer.sha256) == DONE
    assert set(store.md5s([d.sha256 for d in images])) == {d.md5 for d in images}
    assert recovered_after < 30

    redis_cluster.restart(master)  # the later tests get three masters with a replica each again
