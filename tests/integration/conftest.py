"""The store's integration tests run twice: on one Redis and on a three-master Redis Cluster.

Which tests: those of the modules below that use the servers (`settings`), except the ones
about faces. The face index is not cluster-ready yet (its keys are global and its scripts span
them), so on the cluster the workers get a face index that files no face; the face tests run
on one Redis only. Everything else (records, names, plates, the fuzzy index, the listing,
statistics, jobs, erasure, retention, API keys, caches) runs on both.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from imagescan.faceindex import FaceIndex

# Faces in a parameter, an image or the assertions; or a single Redis stopped on purpose.
SINGLE_REDIS_ONLY = {
    "test_erasing_during_the_analysis_leaves_nothing", "test_a_new_upload_after_an_erasure_is_a_new_image",
    "test_readyz_is_503_when_redis_is_down",
}
CLUSTER_MODULES = {
    "test_erasure", "test_listing_api", "test_plates_api", "test_license_search", "test_jobs_api",
    "test_image_names", "test_image_service_api", "test_access_control", "test_transforms_api",
    "test_store_steps",
}


def _runs_on_the_cluster_too(metafunc) -> bool:
    module = metafunc.module.__name__.rpartition(".")[2]
    own_arguments = inspect.signature(metafunc.function).parameters
    return (module in CLUSTER_MODULES and "settings" in metafunc.fixturenames
            and "face" not in metafunc.function.__name__ and "redis_server" not in own_arguments
            and metafunc.function.__name__ not in SINGLE_REDIS_ONLY)


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


class FacelessIndex(FaceIndex):
    """On the cluster: files no face and matches nothing (see the module's docstring)."""

    def add_image_faces(self, sha256, faces):
        return []

    def sync(self) -> int:
        return 0


@pytest.fixture
def worker_services(worker_services, redis_backend):
    if redis_backend != "cluster":
        return worker_services

    def build(**changes):
        services = worker_services(**changes)
        return dataclasses.replace(services, face_index=FacelessIndex(services.redis))

    return build
