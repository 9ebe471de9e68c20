"""Face search at scale: one search-tier shard at 10^5, 10^6 and 10^7 synthetic encodings.

Each size runs in a fresh child process (so its memory is its own) that builds the shard the
face-search tier builds (imagescan.facevectors: a faiss IVF-Flat index, with the exact float32
matrix for comparison where it fits) and reports:

* build time (training the lists, adding every face), resident memory of the shard process;
* query latency (one face per query, one thread, as a worker's image asks): p50, p99;
* recall against exact search: the (query, face) pairs within the tolerance that the shard
  returns, over all such pairs, the exact pairs computed by streaming the same data in chunks;
* the exact matrix's own latency where it fits (it is what an un-sharded worker scanned).

Synthetic faces: identity centres around a common mean (different people ~0.88 apart, as dlib
encodings of different people sit at 0.8-1.0), four photos per identity (~0.35 apart, as
photos of one person sit at 0.3-0.5); queries are new photos of known identities (80%) and of
strangers (20%). Real encodings cluster more than this, which helps IVF.

    nice python bench/face_search.py [--sizes 100000 1000000 10000000] [--queries 400]
                                     [--probes 48 96 128 192] [--lists 0] [--persist DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from imagescan.faceindex import DEFAULT_TOLERANCE
from imagescan.facematrix import ENCODING_SIZE, EncodingMatrix
from imagescan.facevectors import DEFAULT_IVF_PROBES, IvfVectors, ivf_lists_for

CHUNK = 100_000  # faces generated (and streamed for the exact answers) at once
PHOTOS_PER_IDENTITY = 4
IDENTITY_SPREAD = 0.055  # per component: identities ~0.88 apart
PHOTO_SPREAD = 0.022  # per component: photos of one identity ~0.35 apart
EXACT_UP_TO = 1_000_000  # the exact matrix is timed up to this size


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def owners_of(first: int, count: int) -> list[str]:
    return [f"{row:064x}" for row in range(first, first + count)]


class Synthetic:
    """Deterministic chunks of faces (any chunk alone), and queries drawn from them."""

    def __init__(self, size: int, queries: int, seed: int = 11):
        self.size, self.chunks = size, -(-size // CHUNK)
        rng = np.random.default_rng(seed)
        self.mean = rng.normal(scale=0.1, size=ENCODING_SIZE).astype(np.float32)
        known = int(queries * 0.8)
        query_chunk = rng.integers(0, self.chunks, size=known)
        query_identity = rng.integers(0, self.identities(self.chunks - 1), size=known)
        self.queries = self.mean + rng.normal(scale=IDENTITY_SPREAD, size=(queries, ENCODING_SIZE))  # strangers
        for chunk in np.unique(query_chunk):
            centres = self.centres(int(chunk))
            for query in np.flatnonzero(query_chunk == chunk):
                self.queries[query] = centres[query_identity[query] % len(centres)]
        self.queries = (self.queries + rng.normal(scale=PHOTO_SPREAD, size=self.queries.shape)).astype(np.float32)

    def count(self, number: int) -> int:
        return min(CHUNK, self.size - number * CHUNK)

    def identities(self, number: int) -> int:
        return -(-self.count(number) // PHOTOS_PER_IDENTITY)

    def centres(self, number: int) -> np.ndarray:
        rng = np.random.default_rng([7, number, 0])
        return self.mean + rng.normal(scale=IDENTITY_SPREAD, size=(self.identities(number), ENCODING_SIZE))

    def chunk(self, number: int) -> np.ndarray:
        faces = np.repeat(self.centres(number).astype(np.float32), PHOTOS_PER_IDENTITY, axis=0)[: self.count(number)]
        faces += np.random.default_rng([7, number, 1]).normal(scale=PHOTO_SPREAD, size=faces.shape).astype(np.float32)
        return faces


def exact_pairs(queries: np.ndarray, faces: np.ndarray, first_row: int, tolerance: float) -> set[tuple[int, int]]:
    squared = (faces * faces).sum(1)[:, None] - 2 * faces @ queries.T + (queries * queries).sum(1)[None, :]
    rows, found = np.nonzero(squared <= tolerance * tolerance + 1e-3)
    exact = np.linalg.norm(faces[rows].astype(np.float64) - queries[found].astype(np.float64), axis=1)
    return {(int(q), first_row + int(r)) for r, q, d in zip(rows, found, exact) if d <= tolerance}


def timed_queries(search, queries: np.ndarray) -> tuple[list[float], set[tuple[int, int]]]:
    """Wall seconds per query, and the pairs found; the CPU seconds per query go in CPU_SECONDS."""
    seconds, pairs = [], set()
    CPU_SECONDS.clear()
    for number, query in enumerate(queries):
        started, cpu_started = time.perf_counter(), time.thread_time()
        found = search(query[None, :])
        seconds.append(time.perf_counter() - started)
        CPU_SECONDS.append(time.thread_time() - cpu_started)
        pairs |= {(number, int(owner, 16)) for owner in found}
    return seconds, pairs


CPU_SECONDS: list[float] = []  # the last timed_queries' CPU time per query (this machine is shared)


def percentiles(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 2),
            "p99_ms": round(float(np.percentile(seconds, 99)) * 1000, 2)}


def run_one(size: int, shard: int, shards: int, args) -> dict:
    """Build shard `shard` of `shards` (the chunks c with c % shards == shard) and query it."""
    import faiss

    faiss.omp_set_num_threads(1)  # a shard answers one query per thread; the machine is shared
    data = Synthetic(size, args.queries)
    mine = [number for number in range(data.chunks) if number % shards == shard]
    held = sum(data.count(number) for number in mine)
    lists = args.lists or ivf_lists_for(held)
    result: dict = {"faces": held, "lists": lists, "rss_start_mib": round(rss_mib())}
    started = time.perf_counter()
    first = data.chunk(mine[0])
    sample = first[np.random.default_rng(3).permutation(len(first))[: lists * 30]]
    index = IvfVectors.trained_on(sample, lists, args.probes[0])
    result["train_s"] = round(time.perf_counter() - started, 1)
    exact = EncodingMatrix(held) if held <= EXACT_UP_TO else None
    for number in mine:
        faces = first if number == mine[0] else data.chunk(number)
        rows = np.arange(number * CHUNK, number * CHUNK + len(faces))
        index.add(faces, owners_of(number * CHUNK, len(faces)), rows)
        if exact is not None:
            exact.append(faces, owners_of(number * CHUNK, len(faces)))
    result["build_s"] = round(time.perf_counter() - started, 1)
    del first, faces
    result["rss_shard_mib"] = round(rss_mib())
    truth: set[tuple[int, int]] = set()
    for number in mine:  # the exact answers, streamed
        truth |= exact_pairs(data.queries, data.chunk(number), number * CHUNK, args.tolerance)
    result["truth"], result["by_probes"] = sorted(truth), {}
    for probes in args.probes:  # the same index, probing more lists: recall against time
        index.index.nprobe = probes
        seconds, found = timed_queries(lambda q: index.within(q, args.tolerance), data.queries)
        result["by_probes"][probes] = {"seconds": seconds, "cpu": list(CPU_SECONDS), "found": sorted(found)}
    if exact is not None:
        exact_seconds, exact_found = timed_queries(lambda q: exact.within(q, args.tolerance), data.queries)
        result.update({f"exact_{k}": v for k, v in percentiles(exact_seconds).items()})
        result.update({f"exact_cpu_{k}": v for k, v in percentiles(CPU_SECONDS).items()})
        result["exact_matches_truth"] = exact_found == truth
    if args.persist:
        result.update(persistence(index, Path(args.persist), args.probes[0]))
    result["peak_rss_mib"] = round(peak_rss_mib())
    return result


def tier_figures(size: int, shards: list[dict]) -> dict:
    """One search asks every shard at once: its time is the slowest shard's; recall over the union."""
    truth = {tuple(pair) for shard in shards for pair in shard.pop("truth")}
    figures: dict = {"faces": size, "shards": len(shards), "pairs_exact": len(truth), "by_probes": {}}
    for probes in shards[0]["by_probes"]:
        runs = [shard["by_probes"][probes] for shard in shards]
        found = {tuple(pair) for run in runs for pair in run["found"]}
        figures["by_probes"][probes] = {
            **{f"search_{k}": v for k, v in percentiles(list(np.max([r["seconds"] for r in runs], axis=0))).items()},
            **{f"cpu_{k}": v for k, v in percentiles(list(np.max([r["cpu"] for r in runs], axis=0))).items()},
            "recall": round(len(found & truth) / max(1, len(truth)), 4), "extra_pairs": len(found - truth)}
    for shard in shards:
        del shard["by_probes"]
    figures["per_shard"] = shards
    return figures


def persistence(shard: IvfVectors, directory: Path, probes: int) -> dict:
    with tempfile.TemporaryDirectory(dir=directory) as saved:
        started = time.perf_counter()
        shard.save(Path(saved))
        written = time.perf_counter() - started
        started = time.perf_counter()
        IvfVectors.load(Path(saved), probes)
        return {"save_s": round(written, 1), "load_s": round(time.perf_counter() - started, 1),
                "snapshot_mib": round(sum(p.stat().st_size for p in Path(saved).iterdir()) / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 1, 4], help="tier shards, one per size")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--probes", type=int, nargs="+", default=sorted({48, 96, DEFAULT_IVF_PROBES, 192}))
    parser.add_argument("--lists", type=int, default=0, help="IVF lists per shard (0: 2*sqrt(faces held))")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--persist", help="a directory to time saving and loading each shard in")
    parser.add_argument("--one", type=int, nargs=3, help=argparse.SUPPRESS)  # a child: size, shard, shards
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args)))
        return
    for size, shards in zip(args.sizes, args.shards):
        results = []
        for shard in range(shards):  # one after the other: each child's memory is one shard's
            command = [sys.executable, __file__, "--one", str(size), str(shard), str(shards),
                       "--queries", str(args.queries), "--probes", *map(str, args.probes), "--lists", str(args.lists),
                       "--tolerance", str(args.tolerance)] + (["--persist", args.persist] if args.persist else [])
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # one core per shard, as in the tier
            output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(tier_figures(size, results)), flush=True)


if __name__ == "__main__":
    main()
