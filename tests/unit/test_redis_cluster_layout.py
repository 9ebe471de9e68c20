"""The key layout a Redis Cluster needs, and the settings that choose a cluster client."""

from __future__ import annotations

import pytest
import redis.exceptions
from redis.crc import key_slot

from imagescan import keys, migrate
from imagescan.config import ConfigError, Settings
from imagescan.redisclient import cluster_seeds, connect_redis, wants_cluster

SHA = "ab" * 32


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_every_key_of_one_image_is_in_its_slot():
    own = [keys.image(SHA), keys.image_names(SHA), keys.image_erasure(SHA), keys.image_faces(SHA),
           keys.image_matches(SHA), keys.image_jobs(SHA), keys.image_job_history(SHA),
           keys.transform_cache(SHA, "mirror"), keys.thumbnail(SHA, 128), keys.work_attempts("analyze", SHA)]
    assert {slot(key) for key in own} == {slot(keys.image(SHA))}


def test_a_plates_image_set_shares_the_slot_of_the_known_plates_piece_listing_it():
    for plate in ("BA123CD", "7B9SJLD", "X"):
        assert slot(keys.plate_images(plate)) == slot(keys.known_plates_of(plate))


def test_the_statistics_and_their_markers_share_one_slot():
    stats_keys = [keys.uploads_on_day("2026-12-02"), keys.format_counts(), keys.camera_counts(),
                  keys.stats_step_done(SHA, "1.5", "uploaded")]
    assert len({slot(key) for key in stats_keys}) == 1
    assert SHA not in keys.stats_step_done(SHA, "1.5", "uploaded")  # named by a one-way hash


def test_split_indexes_spread_over_the_three_masters_of_a_fresh_cluster():
    thirds = [(0, 5460), (5461, 10922), (10923, 16383)]
    for piece in (keys.recent_images, keys.known_plates, lambda shard: keys.plate_fuzzy_bucket(shard)):
        slots = [slot(piece(shard)) for shard in range(keys.SHARDS)]
        assert len(set(slots)) == keys.SHARDS
        assert all(sum(low <= s <= high for s in slots) >= 4 for low, high in thirds)


def test_a_fuzzy_bucket_is_in_the_piece_of_its_number():
    for bucket in (0, 17, 131071):
        assert keys.plate_fuzzy_bucket(bucket).startswith(keys.plate_fuzzy_prefix(bucket % keys.SHARDS))


@pytest.mark.parametrize("old, new", [
    (f"img:{SHA}", keys.image(SHA)),
    (f"img:{SHA}:alljobs", keys.image_job_history(SHA)),
    (f"alias:{'c' * 32}", keys.digest_alias("c" * 32)),
    ("plate:BA123CD", keys.plate_images("BA123CD")),
    ("plate:fz:70000", keys.plate_fuzzy_bucket(70000)),
    (f"attempts:render:{'1' * 8}", keys.work_attempts("render", "1" * 8)),
    ("stats:formats", keys.format_counts()),
    (f"job:{'1' * 8}", None), ("face:enc", None), (keys.image(SHA), None),
])
def test_the_migration_names_each_old_key_by_its_new_name(old, new):
    assert migrate.new_name(old) == new


def test_cluster_urls_name_their_seed_nodes_password_and_tls():
    assert cluster_seeds("redis+cluster://:s%40cret@a:7000,b:7001,c") == ([("a", 7000), ("b", 7001), ("c", 6379)],
                                                                           "s@cret", False)
    assert cluster_seeds("rediss+cluster://a:7000")[2] is True
    with pytest.raises(ConfigError):
        cluster_seeds("redis+cluster://")


def test_settings_choose_the_cluster_client():
    assert wants_cluster(Settings(redis_cluster=True))
    assert wants_cluster(Settings.from_env({"REDIS_URL": "redis+cluster://a:7000"}))
    assert not wants_cluster(Settings.from_env({"REDIS_URL": "redis://a:7000/2"}))
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env({"REDIS_URL": "http://a"})
    plain = connect_redis(Settings.from_env({"REDIS_URL": "redis://db:7000/2"}))
    assert (plain.connection_pool.connection_kwargs["host"], plain.connection_pool.connection_kwargs["db"]) == ("db", 2)


def test_a_cluster_client_needs_a_reachable_node():
    with pytest.raises(redis.exceptions.RedisClusterException):
        connect_redis(Settings(redis_cluster=True, redis_host="127.0.0.1", redis_port=1, network_timeout=0.5))
