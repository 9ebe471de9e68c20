"""Real Redis, RabbitMQ and worker processes that a fault test may stop, kill and restart.

Each server keeps its data directory under the test's tmp_path across restarts: Redis with
the append-only file on, RabbitMQ with its mnesia directory and node name, so durable
queues and persistent messages survive a restart exactly as they would in a pod.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pika
import pika.exceptions
import redis

REPO_ROOT = Path(__file__).resolve().parents[2]
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
REDIS_SERVER = "/usr/bin/redis-server"
WORKER_ENTRY = Path(__file__).with_name("run_worker.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _stop_group(process: subprocess.Popen, sig: int, timeout: float) -> None:
    """Signal a server's whole process group (the shell wrapper and the Erlang VM)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


class RedisServer:
    def __init__(self, root: Path, appendfsync: str = "everysec", name: str = "redis", extra_args=()):
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendfsync = appendfsync
        self.extra_args = list(extra_args)  # e.g. --replicaof 127.0.0.1 PORT
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "", "--daemonize", "no",
             "--logfile", str(self.dir / "redis.log"), *self.extra_args],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        wait_until(lambda: self._pings(client), 20, "redis to answer")
        return self

    @staticmethod
    def _pings(client) -> bool:
        try:
            return client.ping()
        except redis.RedisError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: Redis flushes its append-only file and exits, as on a pod restart."""
        if self.process is not None:
            _stop_group(self.process, sig, 30)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


class RabbitServer:
    def __init__(self, root: Path, name: str = "rabbitmq", epmd_port: int | None = None,
                 home: Path | None = None):
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "plugins").write_text("[].\n")
        self.port = free_port()
        self.dist_port = free_port()
        # A private epmd: the node never depends on (or disturbs) another RabbitMQ's epmd.
        # Nodes of one cluster share theirs (a node finds its peers' ports through it).
        self.epmd_port = epmd_port or free_port()
        self.home = home  # holds the .erlang.cookie (shared by the nodes of a cluster)
        self.process: subprocess.Popen | None = None

    @property
    def node(self) -> str:
        return f"imagescan-fault-{self.port}@localhost"

    def env(self) -> dict:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            # Everything on 127.0.0.1 only: AMQP above, epmd and Erlang distribution here.
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),  # kept across restarts
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
            "HOME": str(self.home) if self.home else os.environ.get("HOME") or str(self.dir),
        }

    def start(self, timeout: float = 90) -> RabbitServer:
        with open(self.dir / "stdout.log", "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                # cwd: a node that dies writes its MnesiaCore dump there, not in the checkout.
                [RABBITMQ_SERVER], env=self.env(), cwd=self.dir, start_new_session=True,
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._accepts_amqp, timeout, "RabbitMQ to accept AMQP connections", interval=0.3)
        return self

    def _accepts_amqp(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"rabbitmq-server exited with {self.process.returncode}; see {self.dir}")
        try:
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", self.port, socket_timeout=1, connection_attempts=1)).close()
            return True
        except (pika.exceptions.AMQPError, OSError):
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            _stop_group(self.process, sig, 60)

    def ctl(self, *args: str) -> str:
        return subprocess.run([RABBITMQCTL, *args], env=self.env(), cwd=self.dir, capture_output=True, text=True,
                              timeout=60, check=True).stdout

    def shutdown(self) -> None:
        """Stop the node for good, with the epmd it started."""
        self.stop()
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)

    def queue_depth(self, queue: str) -> int:
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.port))
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()


class WorkerProcess:
    """`python -m worker` (or its child mode) with the fault-test engines registered."""

    def __init__(self, root: Path, env: dict, *, child_only: bool, name: str):
        self.log_path = root / f"{name}.stderr"
        with open(self.log_path, "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER_ENTRY)] + (["--child"] if child_only else []),
                cwd=REPO_ROOT, env=env, start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=log,
            )

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        else:  # the supervisor is gone; make sure no child outlives it
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.process.returncode

    def records(self) -> list[dict]:
        """The JSON log records the worker wrote on stderr."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    pass
        return found


class RabbitCluster:
    """Three RabbitMQ nodes on loopback joined with `rabbitmqctl join_cluster`: one epmd, one
    Erlang cookie, a node name, ports and data directories each."""

    def __init__(self, root: Path, size: int = 3):
        home = root / "cluster-home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text("imagescan-test-cluster-cookie")
        cookie.chmod(0o400)
        epmd = free_port()
        self.nodes = [RabbitServer(root, f"rabbit{i}", epmd_port=epmd, home=home) for i in range(size)]

    def start(self) -> RabbitCluster:
        try:
            self._form()
        except BaseException:
            self.shutdown()  # no node outlives a cluster that failed to form
            raise
        return self

    def _form(self) -> None:
        with ThreadPoolExecutor(len(self.nodes)) as pool:  # boot in parallel: seconds each
            # Three Erlang VMs booting at once on a busy machine: allow them longer than one.
            list(pool.map(self._boot, self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        status = json.loads(first.ctl("cluster_status", "--formatter", "json", "-q"))
        assert len(status["running_nodes"]) == len(self.nodes), status["running_nodes"]

    @staticmethod
    def _boot(node: RabbitServer, attempts: int = 3) -> None:
        """Start a node; on a port taken since free_port() chose it (other test runs share
        the machine), choose new ports and start again."""
        for attempt in range(attempts):
            try:
                node.start(timeout=240)
                return
            except AssertionError:
                node.stop(signal.SIGKILL)
                if attempt == attempts - 1 or "eaddrinuse" not in (node.dir / "stdout.log").read_text(errors="replace"):
                    raise
                (node.dir / "stdout.log").unlink()
                node.port, node.dist_port = free_port(), free_port()

    @property
    def addresses(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def alive(self) -> list[RabbitServer]:
        return [node for node in self.nodes if node.process.poll() is None]

    def queue_members(self, queue: str) -> tuple[str, list[str]]:
        """(leader node, member nodes) of a quorum queue, asked of a running node."""
        out = self.alive()[0].ctl("list_queues", "name", "leader", "members", "--formatter", "json", "-q")
        entry = next(q for q in json.loads(out) if q["name"] == queue)
        return entry["leader"], entry["members"]

    def by_node(self, node_name: str) -> RabbitServer:
        return next(node for node in self.nodes if node.node == node_name)

    def shutdown(self) -> None:
        for node in self.nodes:
            node.stop(signal.SIGKILL)  # a node never started has no process: nothing to do
        # The shared epmd refuses to stop while a dying node is still registered: ask again.
        for _ in range(20):
            answer = subprocess.run(["epmd", "-port", str(self.nodes[0].epmd_port), "-kill"],
                                    env=self.nodes[0].env(), capture_output=True, text=True, timeout=10,
                                    check=False)
            if answer.stdout.strip() == "Killed" or "cannot connect" in (answer.stderr + answer.stdout).lower():
                return
            time.sleep(0.5)


class SentinelGroup:
    """A Redis master, a replica and three Sentinels (quorum 2) on loopback."""

    MASTER_NAME = "imagescan"

    def __init__(self, root: Path):
        self.master = RedisServer(root, name="redis-a")
        self.replica = RedisServer(root, name="redis-b")
        self.sentinels: list[subprocess.Popen] = []
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.root = root

    def start(self) -> SentinelGroup:
        try:
            self._form()
        except BaseException:
            self.shutdown()  # no server outlives a group that failed to form
            raise
        return self

    def _form(self) -> None:
        # As in k8s/components/redis-sentinel/redis.conf: no writes without a replica in sync.
        self.master.extra_args = ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"]
        self.master.start()
        self.replica.extra_args = ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica.start()
        wait_until(lambda: self.master.client().info("replication")["connected_slaves"] == 1, 20,
                   "the replica to connect")
        for number, port in enumerate(self.sentinel_ports):
            directory = self.root / f"sentinel{number}"
            directory.mkdir()
            (directory / "sentinel.conf").write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER_NAME} 2000\n"
                f"sentinel failover-timeout {self.MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {self.MASTER_NAME} 1\n"
            )
            self.sentinels.append(subprocess.Popen(
                [REDIS_SERVER, str(directory / "sentinel.conf"), "--sentinel", "--logfile",
                 str(directory / "sentinel.log")],
                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: all(self._sentinel_sees_all(port) for port in self.sentinel_ports), 30,
                   "every Sentinel to know the replica and the other Sentinels")

    def _sentinel_sees_all(self, port: int) -> bool:
        try:
            client = redis.Redis(port=port, socket_timeout=1)
            master = client.sentinel_master(self.MASTER_NAME)
            return master["num-slaves"] >= 1 and master["num-other-sentinels"] >= 2
        except redis.RedisError:
            return False

    @property
    def addresses(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def current_master_port(self) -> int:
        client = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
        return int(client.sentinel_get_master_addr_by_name(self.MASTER_NAME)[1])

    def shutdown(self) -> None:
        for sentinel in self.sentinels:
            _stop_group(sentinel, signal.SIGTERM, 10)
        self.master.stop(signal.SIGKILL)
        self.replica.stop(signal.SIGKILL)
