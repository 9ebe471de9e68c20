"""Losing a broker node or the Redis master under steady load, on real local clusters.

RabbitMQ: three nodes joined with `rabbitmqctl join_cluster`, the work queue a quorum queue
on all three; the node leading it is killed (SIGKILL) while uploads keep coming. The REST
and the worker know every node (RABBITMQ_HOSTS) and move to another one.

Redis: a master, a replica and three Sentinels; the master is killed while uploads keep
coming. The services find the promoted replica through the Sentinels (REDIS_SENTINELS).

Both back the README's "What survives what".
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from imagescan import topology
from tests.faults.conftest import Stack, assert_none_lost, report_figures
from tests.faults.servers import RabbitCluster, RedisServer, SentinelGroup, wait_until
from tests.conftest import wait_for_status
from tests.imagefactory import jpeg

# Booting three Erlang VMs on a busy machine takes minutes.
pytestmark = [pytest.mark.faults, pytest.mark.clusters, pytest.mark.timeout(600)]

# Publishing must resume this soon after a broker node or the Redis master is lost.
RESUME_WITHIN_SECONDS = 20


class SteadyLoad:
    """One upload every `interval` seconds from a thread; 503s are sent again afterwards
    (what a client does with Retry-After), each answer timed."""

    def __init__(self, client, interval: float = 0.25):
        self.client = client
        self.interval = interval
        self.accepted: list[tuple[float, str]] = []  # (when, digest)
        self.refused: list[tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._seeds = iter(range(5000, 100000))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            data = jpeg(seed=next(self._seeds))
            response = self.client.post("/scan/image/steady.jpg", data=data)
            if response.status_code == 200:
                self.accepted.append((time.monotonic(), response.get_json()["hash"]))
            else:
                assert response.status_code == 503, (response.status_code, response.get_json())
                self.refused.append((time.monotonic(), data))
            self._stop.wait(self.interval)

    def accepted_after(self, moment: float) -> int:
        return sum(when > moment for when, _ in self.accepted)

    def first_accepted_after(self, moment: float) -> float:
        return min(when for when, _ in self.accepted if when > moment) - moment

    def retry_refused(self) -> list[str]:
        digests = []
        for _, data in self.refused:
            response = self.client.post("/scan/image/retried.jpg", data=data)
            assert response.status_code == 200, response.get_json()
            digests.append(response.get_json()["hash"])
        return digests


@pytest.fixture
def rabbit_cluster(tmp_path):
    cluster = RabbitCluster(tmp_path).start()
    yield cluster
    cluster.shutdown()


def test_killing_the_queue_leaders_node_loses_no_accepted_upload(tmp_path, rabbit_cluster, record_property):
    stack = Stack(tmp_path, RedisServer(tmp_path).start(), rabbit_cluster.nodes[0])
    stack.settings = stack.settings.replace(rabbitmq_hosts=tuple(
        ("127.0.0.1", node.port) for node in rabbit_cluster.nodes))
    try:
        assert stack.client.post("/scan/image/first.jpg", data=jpeg(seed=1)).status_code == 200
        leader, members = rabbit_cluster.queue_members(topology.WORK_QUEUE)
        assert len(members) == 3, f"the work queue is replicated on {members}"
        stack.start_worker(RABBITMQ_HOSTS=rabbit_cluster.addresses, FAULT_DELAY_SECONDS=0.05)
        with SteadyLoad(stack.client) as load:
            wait_until(lambda: load.accepted_after(0) >= 8, 60, "steady uploads before the fault")
            killed_at = time.monotonic()
            rabbit_cluster.by_node(leader).stop(signal.SIGKILL)
            wait_until(lambda: load.accepted_after(killed_at) >= 8, 60, "uploads accepted after the node loss")
        resumed = load.first_accepted_after(killed_at)
        new_leader, _ = rabbit_cluster.queue_members(topology.WORK_QUEUE)
        assert new_leader != leader
        digests = [digest for _, digest in load.accepted] + load.retry_refused()
        figure = (f"RabbitMQ leader node killed: first upload accepted {resumed:.1f}s later, "
                  f"{len(load.refused)} answered 503 meanwhile (sent again)")
        print(figure)
        record_property("figures", figure)
        assert resumed < RESUME_WITHIN_SECONDS, figure
        assert_none_lost(record_property, "RabbitMQ node loss", stack.client, digests, timeout=120)
    finally:
        stack.close()


@pytest.fixture
def sentinel_group(tmp_path):
    group = SentinelGroup(tmp_path).start()
    yield group
    group.shutdown()


def test_killing_the_redis_master_fails_over_to_the_replica(tmp_path, sentinel_group, shared_rabbit,
                                                            record_property):
    stack = Stack(tmp_path, sentinel_group.master, shared_rabbit)
    stack.purge_queues()
    stack.settings = stack.settings.replace(redis_sentinels=tuple(
        ("127.0.0.1", port) for port in sentinel_group.sentinel_ports))
    try:
        stack.start_worker(REDIS_SENTINELS=sentinel_group.addresses, FAULT_DELAY_SECONDS=0.05)
        with SteadyLoad(stack.client) as load:
            wait_until(lambda: load.accepted_after(0) >= 8, 60, "steady uploads before the fault")
            killed_at = time.monotonic()
            sentinel_group.master.stop(signal.SIGKILL)
            wait_until(lambda: load.accepted_after(killed_at) >= 8, 90, "uploads accepted after the failover")
        assert sentinel_group.current_master_port() == sentinel_group.replica.port
        resumed = load.first_accepted_after(killed_at)
        retried = load.retry_refused()
        # Replication is asynchronous: an upload acknowledged by the old master in the last
        # second before it died may not have reached the replica (README: "What survives what").
        lost = [(when, digest) for when, digest in load.accepted if not _finishes(stack, digest)]
        late = [when for when, _ in lost if when < killed_at - 1.0 or when > killed_at]
        figure = (f"Redis master killed: first upload accepted {resumed:.1f}s later, "
                  f"{len(load.refused)} answered 503 meanwhile, {len(lost)} of {len(load.accepted)} "
                  f"acknowledged uploads lost (all within 1 s before the kill)")
        print(figure)
        record_property("figures", figure)
        assert resumed < RESUME_WITHIN_SECONDS, figure
        assert late == [], figure
        assert_none_lost(record_property, "Redis failover (retried uploads)", stack.client, retried, timeout=60)
        report_figures(record_property, "Redis failover", len(load.accepted), len(load.accepted) - len(lost),
                       len(lost))
    finally:
        stack.close()
        sentinel_group.replica.stop(signal.SIGKILL)


def _finishes(stack, digest: str) -> bool:
    try:
        return wait_for_status(stack.client, digest, timeout=30)["status"] == "done"
    except AssertionError:
        return False
