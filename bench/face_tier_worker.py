"""The worker's side of face search, end to end: its memory and its face step's latency.

For each size: a private redis-server (free port) gets that many synthetic faces written
straight into the face partitions; the face-search tier's shards (`python -m facetier`) load
them; then a worker-like child process (FaceIndex as the worker builds it) stores and matches
new images, one face each, and reports its resident memory and the p50/p99 of
``add_image_faces`` (store in Redis, ask every shard over HTTP, store the matches). The same
child with FACE_SEARCH=local (every face in the worker) is measured for comparison.

    nice python bench/face_tier_worker.py [--sizes 10000 100000 1000000] [--shards 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from imagescan import keys
from imagescan.facestore import face_id, partition_of_owner

IMAGES = 200  # new images the worker child processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def synthetic(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(scale=0.055, size=(count, 128)) + rng.normal(scale=0.1, size=128)).astype("<f4")


def owner(number: int) -> str:
    return hashlib.sha256(f"bench-face-{number}".encode()).hexdigest()


def fill_partitions(client, encodings: np.ndarray, first_owner: int = 0) -> None:
    """Write faces (one image each) into the face partitions as FaceStore.add would, in bulk."""
    owners = [owner(first_owner + i) for i in range(len(encodings))]
    by_partition: dict[int, list[int]] = {}
    for row, sha in enumerate(owners):
        by_partition.setdefault(partition_of_owner(sha), []).append(row)
    for partition, rows in by_partition.items():
        named = keys.face_partition(partition)
        seq = int(client.hget(named.state, "seq") or 0)
        for start in range(0, len(rows), 5000):
            block = rows[start : start + 5000]
            ids = [face_id(partition, seq + 1 + i) for i in range(len(block))]
            pipe = client.pipeline(transaction=False)
            pipe.hset(named.records,
                      mapping={i: owners[r].encode() + encodings[r].tobytes() for i, r in zip(ids, block)})
            pipe.hset(named.image_ids, mapping={owners[r]: str(i) for i, r in zip(ids, block)})
            pipe.hset(named.state, mapping={"seq": seq + len(block), "stamp": f"{ids[-1]}@bench"})
            pipe.execute()
            seq += len(block)


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_child(port: int, mode: str, urls: list[str]) -> dict:
    """What a worker does per image with faces; its memory after IMAGES images."""
    import redis

    from imagescan.analyzers import Box, FaceFound
    from imagescan.faceindex import FaceIndex
    from imagescan.facesearch import face_search_for

    class Settings:  # the two settings face_search_for reads
        face_search, face_tier_urls, face_tier_timeout = mode, urls, 30.0

    client = redis.Redis(port=port)
    started = time.perf_counter()
    index = FaceIndex(client, search=face_search_for(Settings, client))
    index.sync()
    start_seconds = time.perf_counter() - started
    near = synthetic(IMAGES, seed=5)
    seconds = []
    cpu_started = time.process_time()
    for number in range(IMAGES):
        face = FaceFound(box=Box(0, 0, 9, 9), encoding=tuple(near[number].tolist()))
        started = time.perf_counter()
        index.add_image_faces(hashlib.sha256(f"{mode}-{number}".encode()).hexdigest(), [face])
        seconds.append(time.perf_counter() - started)
    return {"mode": mode, "worker_rss_mib": round(rss_mib()), "worker_start_s": round(start_seconds, 2),
            "faces_held": len(index), "add_p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 1),
            "add_p99_ms": round(float(np.percentile(seconds, 99)) * 1000, 1),
            "worker_cpu_ms_per_add": round((time.process_time() - cpu_started) * 1000 / IMAGES, 1)}


def start_shards(port: int, shards: int, directory: str) -> list[tuple[subprocess.Popen, str]]:
    started = []
    for shard in range(shards):
        http = free_port()
        env = {**os.environ, "REDIS_PORT": str(port), "REDIS_HOST": "127.0.0.1", "FACE_TIER_SHARD": str(shard),
               "FACE_TIER_SHARDS": str(shards), "FACE_TIER_PORT": str(http), "PYTHONPATH": str(REPO_ROOT),
               "FACE_TIER_DIR": f"{directory}/shard{shard}"}
        process = subprocess.Popen([sys.executable, "-m", "facetier"], env=env, cwd=REPO_ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append((process, f"http://127.0.0.1:{http}"))
    for process, url in started:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert process.poll() is None, "a shard died while loading"
                time.sleep(0.5)
    return started


def run_size(size: int, shards: int) -> dict:
    import redis

    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                                   "--dir", directory], stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            while not _answers(client):
                time.sleep(0.1)
            fill_partitions(client, synthetic(size, seed=1))
            started = time.perf_counter()
            tier = start_shards(port, shards, directory)
            result = {"faces": size, "shards": shards, "tier_load_s": round(time.perf_counter() - started, 1)}
            try:
                cpu_before = [cpu_seconds(process.pid) for process, _ in tier]
                result["tier"] = _child(port, "tier", [url for _, url in tier])
                result["shard_rss_mib"] = [round(rss_mib(process.pid)) for process, _ in tier]
                result["shard_cpu_ms_per_search"] = [round((cpu_seconds(process.pid) - before) * 1000 / IMAGES, 1)
                                                     for (process, _), before in zip(tier, cpu_before)]
            finally:
                for process, _ in tier:
                    process.send_signal(signal.SIGTERM)
                    process.wait()
            result["local"] = _child(port, "local", [])
            return result
        finally:
            server.terminate()
            server.wait()


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 (not up yet)
        return False


def _child(port: int, mode: str, urls: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", str(port), mode, ",".join(urls)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        port, mode, urls = args.child
        print(json.dumps(worker_child(int(port), mode, [u for u in urls.split(",") if u])))
        return
    for size in args.sizes:
        print(json.dumps(run_size(size, args.shards)), flush=True)


if __name__ == "__main__":
    main()
