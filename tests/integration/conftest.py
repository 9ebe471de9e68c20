"""The store's integration tests run twice: on one Redis and on a three-master Redis Cluster.

Which tests: those of the modules below that use Redis (`settings`, `redis_client`): records, names,
plates, the fuzzy index, the listing, statistics, jobs, erasure, retention, API keys, caches,
and faces (the face partitions, matches both ways, erasure of faces) run on both.
"""

from __future__ import annotations

import inspect

import pytest

# A single Redis stopped on purpose.
SINGLE_REDIS_ONLY = {"test_readyz_is_503_when_redis_is_down"}
# Modules whose every test (but the above) runs on both; None: all of it.
CLUSTER_MODULES = {
    "test_erasure": None, "test_listing_api": None, "test_plates_api": None, "test_license_search": None,
    "test_jobs_api": None, "test_image_names": None, "test_store_steps": None, "test_faces_api": None,
    "test_faceindex_redis": None,
    # Of these, only what reaches the store (the rest checks requests, not storage).
    "test_image_service_api": {
        "test_upload_link_lives_for_its_expiry", "test_upload_images_maps_each_filename_to_its_sha256",
        "test_a_repeated_image_keeps_its_first_id_and_counts_once", "test_stats_count_uploads_formats_and_cameras",
        "test_mpo_counts_as_jpeg", "test_wrong_keys_are_rate_limited_per_client",
    },
    "test_access_control": {
        "test_a_revoked_key_is_refused_and_keys_are_stored_hashed", "test_key_commands_work_and_are_logged_without_the_key",
        "test_an_erasure_is_logged_with_who_and_what",
    },
    "test_transforms_api": {"test_every_digest_of_the_image_is_an_id", "test_results_are_cached_with_a_ttl"},
}


def _runs_on_the_cluster_too(metafunc) -> bool:
    module = metafunc.module.__name__.rpartition(".")[2]
    own_arguments = inspect.signature(metafunc.function).parameters
    name = metafunc.function.__name__
    chosen = module in CLUSTER_MODULES and (CLUSTER_MODULES[module] is None or name in CLUSTER_MODULES[module])
    uses_redis = "settings" in metafunc.fixturenames or "redis_client" in metafunc.fixturenames
    return (chosen and uses_redis
            and "redis_server" not in own_arguments and name not in SINGLE_REDIS_ONLY)


def pytest_generate_tests(metafunc):
    if _runs_on_the_cluster_too(metafunc):
        metafunc.parametrize("redis_backend", ["redis", "cluster"], indirect=True)


@pytest.fixture
def redis_backend(request) -> str:
    return getattr(request, "param", "redis")


@pytest.fixture
def redis_client(request, redis_backend, redis_client):
    """The test's raw client: of the single Redis, or of the (flushed) cluster."""
    if redis_backend != "cluster":
        yield redis_client
        return
    cluster = request.getfixturevalue("redis_cluster")
    cluster.wait_healthy()
    cluster.flush()
    client = cluster.client()
    yield client
    client.close()


@pytest.fixture
def settings(settings, redis_backend, request):
    if redis_backend != "cluster":
        return settings
    host, port = request.getfixturevalue("redis_cluster").seed
    return settings.replace(redis_cluster=True, redis_host=host, redis_port=port)
