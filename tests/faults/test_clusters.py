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
from tests.conftest import wait_for_status
from tests.faults.conftest import Stack, assert_none_lost
from tests.faults.servers import RabbitCluster, RedisServer, SentinelGroup, wait_until
from tests.imagefactory import jpeg

# Booting three Erlang VMs on a busy machine takes minutes.
pytestmark = [pytest.mark.faults, pytest.mark.clusters, pytest.mark.timeout(600)]

# Publishing must resume this soon after a broker node or the Redis master is lost.
RESUME_WITHIN_SECONDS = 20
# How far the replica may lag behind the master (the master's min-replicas-max-lag).
REPLICA_LAG_BOUND_SECONDS = 10


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

    def __enter__(self):
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
        outcome = {digest: _outcome(stack, digest) for _, digest in load.accepted}
        counts = {state: list(outcome.values()).count(state) for state in ("done", "failed", "queued", "missing")}
        # Replication is asynchronous: a record the old master acknowledged may not have
        # reached the replica, within the replica's lag (bounded by min-replicas-max-lag).
        missing_outside_lag = [when for when, digest in load.accepted if outcome[digest] == "missing"
                               and not killed_at - REPLICA_LAG_BOUND_SECONDS <= when <= killed_at]
        figure = (f"Redis master killed: first upload accepted {resumed:.1f}s later, "
                  f"{len(load.refused)} answered 503 meanwhile (all accepted when sent again); "
                  f"{len(load.accepted)} acknowledged before and after: {counts}")
        print(figure)
        record_property("figures", figure)
        assert resumed < RESUME_WITHIN_SECONDS, figure
        assert missing_outside_lag == [], figure
        # Uploads acknowledged once the replica had taken over are all analysed.
        after_failover = [digest for when, digest in load.accepted if when >= killed_at + resumed]
        assert_none_lost(record_property, "Redis failover (after the promotion)", stack.client,
                         after_failover + retried, timeout=90)
    finally:
        stack.close()
        sentinel_group.replica.stop(signal.SIGKILL)


def _outcome(stack, digest: str) -> str:
    """done / failed / queued (never finished) / missing (the record itself is gone)."""
    try:
        return wait_for_status(stack.client, digest, timeout=20)["status"]
    except AssertionError:
        return "queued" if stack.client.get(f"/images/{digest}").status_code == 200 else "missing"
