"""A real Redis Cluster on loopback for the tests: three masters, each with one replica.

`redis-server --cluster-enabled yes` on free ports, joined by `redis-cli --cluster create`.
A short cluster-node-timeout makes a replica take over within a few seconds of its master's
death (the failover test kills one).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis
import redis.cluster

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 1500


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class ClusterNode:
    def __init__(self, root: Path):
        self.port = _free_port()
        self.bus_port = _free_port()  # given, not port + 10000 (which may be taken or past 65535)
        self.dir = root / str(self.port)
        self.dir.mkdir(parents=True)
        self.process: subprocess.Popen | None = None

    def start(self) -> ClusterNode:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--cluster-enabled", "yes", "--cluster-port", str(self.bus_port), "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "no", "--save", "",
             "--daemonize", "no", "--logfile", str(self.dir / "redis.log")],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_until(lambda: self.client().ping(), 20, f"redis on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalRedisCluster:
    """Three masters and three replicas; `client()` is the services' kind of client."""

    def __init__(self, root: Path, masters: int = 3, replicas: int = 1):
        self.nodes = [ClusterNode(root) for _ in range(masters * (1 + replicas))]
        self.replicas = replicas

    def start(self) -> LocalRedisCluster:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )
        _wait_until(self._healthy, 30, "the cluster to cover every slot on every node")
        return self

    def _healthy(self) -> bool:
        for node in self.nodes:
            if not node.alive:
                continue
            info = node.client().cluster("info")
            if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) < len(self.nodes):
                return False
        return True

    @property
    def seed(self) -> tuple[str, int]:
        """A node to ask first (one that is alive)."""
        return "127.0.0.1", next(node.port for node in self.nodes if node.alive)

    def client(self) -> redis.cluster.RedisCluster:
        host, port = self.seed
        return redis.cluster.RedisCluster(host=host, port=port, socket_timeout=2, socket_connect_timeout=1)

    def masters(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.alive and n.client().info("replication")["role"] == "master"]

    def master_of(self, key: str) -> ClusterNode:
        """The node serving a key now (after a failover: the promoted replica)."""
        client = self.client()
        try:
            port = client.get_node_from_key(key).port
        finally:
            client.close()
        return next(node for node in self.nodes if node.port == port)

    def wait_replicated(self, timeout: float = 10) -> None:
        """Until every replica has every write its master acknowledged (replication is async)."""
        def caught_up() -> bool:
            for node in self.masters():
                info = node.client().info("replication")
                replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
                if any(int(r["offset"]) < int(info["master_repl_offset"]) for r in replicas):
                    return False
            return True

        _wait_until(caught_up, timeout, "the replicas to catch up")

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again: it rejoins (as a replica of whoever took over)."""
        node.start()
        self.wait_healthy()

    def flush(self) -> None:
        for node in self.masters():
            node.client().flushall()

    def wait_healthy(self, timeout: float = 30) -> None:
        _wait_until(self._healthy_without_dead, timeout, "the cluster to recover")

    def _healthy_without_dead(self) -> bool:
        return all(node.client().cluster("info").get("cluster_state") == "ok" for node in self.nodes if node.alive)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
