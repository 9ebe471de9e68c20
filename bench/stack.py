"""Processes for the throughput bench: Redis, RabbitMQ, the REST, the bare reference app,
a worker, and wrk as the load generator. Everything listens on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.faults.servers import RabbitServer, RedisServer, free_port, wait_until

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
GUNICORN = {"GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "8"}


class Stack:
    """Redis and RabbitMQ in a temporary directory, and the services started against them."""

    def __init__(self, rabbit: bool = True):
        """`rabbit`: start RabbitMQ too (without it, the services point at a closed port)."""
        self.root = Path(tempfile.mkdtemp(prefix="imagescan-bench-"))
        self.redis = RedisServer(self.root).start()
        self.rabbit = RabbitServer(self.root).start() if rabbit else None
        self._rabbit_port = self.rabbit.port if rabbit else free_port()
        self.processes: list[subprocess.Popen] = []

    def env(self, **extra) -> dict:
        return {**os.environ, **GUNICORN, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis.port),
                "RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_PORT": str(self._rabbit_port),
                "PYTHONPATH": str(REPO_ROOT), **extra}

    def start(self, args: list[str], **extra) -> subprocess.Popen:
        with open(self.root / f"{Path(args[-1]).name}-{len(self.processes)}.log", "ab") as log:
            process = subprocess.Popen([sys.executable, *args], env=self.env(**extra), cwd=REPO_ROOT,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def http_service(self, args: list[str], **extra) -> tuple[subprocess.Popen, str]:
        port = free_port()
        process = self.start(args, PORT=str(port), **extra)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), 60, f"{args} to answer", interval=0.2)
        return process, url

    def stop(self) -> None:
        for process in self.processes:
            _stop(process)
        if self.rabbit is not None:
            self.rabbit.stop()
        self.redis.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _tree(root_pid: int) -> list[int]:
    """A process and all its descendants (children of any of its threads)."""
    found, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        found.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                pending += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


def rss_mb(root_pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    total = 0
    for pid in _tree(root_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def cpu_seconds(root_pid: int) -> float:
    """CPU time (user + system) used so far by a process and its living descendants. On a
    machine shared with other work, CPU time per request moves much less than requests per
    second: it says what a request costs, not how much of the machine the run was given."""
    total = 0
    for pid in _tree(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def wrk_with_cpu(url: str, lines: list[str], processes: dict[str, int], **options) -> dict:
    """`wrk`, plus `cpu_ms`: CPU milliseconds per request of each named process tree."""
    before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    summary = wrk(url, lines, **options)
    requests_done = max(1, summary["requests"])
    summary["cpu_ms"] = {name: (cpu_seconds(pid) - before[name]) * 1000 / requests_done
                         for name, pid in processes.items()}
    return summary


def wrk(url: str, lines: list[str], *, connections: int, seconds: float, method: str = "GET",
        lane: str | None = None, threads: int = 2) -> dict:
    """Run wrk against `url`, cycling through `lines` (see wrk.lua); its JSON summary plus rate."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(lines) + "\n")
    env = {**os.environ, "WRK_LIST": listing.name, "WRK_METHOD": method, "WRK_THREADS": str(threads)}
    if lane:
        env["WRK_LANE"] = lane
    try:
        output = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "--timeout", "10s",
             "-s", str(WRK_SCRIPT), url], env=env, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(listing.name)
    summary = json.loads(output.strip().splitlines()[-1])
    summary["rate"] = summary["requests"] / (summary["duration_us"] / 1e6)
    summary["ok"] = summary["requests"] - summary["non2xx"]
    return summary


def rate_text(summary: dict) -> str:
    return f"{summary['rate']:,.0f}/s, p50 {summary['p50_us'] / 1000:.1f} ms, p99 {summary['p99_us'] / 1000:.1f} ms"


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    return wait_until(condition, timeout, what, interval)


def elapsed(since: float) -> float:
    return time.perf_counter() - since
