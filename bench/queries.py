"""The query rows of the throughput bench: many stored images, then /hash, /license,
/license?fuzzy=2 and /images at 8 connections.

The records are written through `ImageStore.import_analysed` (the Lua scripts of uploads
and analyses, pipelined), by several processes at once: building the commands costs the
client more CPU than Redis spends running them, so one client process leaves Redis idle
half of the time.
"""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from stack import elapsed, rate_text, wrk_with_cpu

from imagescan.config import Settings
from imagescan.digests import Digests
from imagescan.store import ImageStore, connect_redis

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BATCH = 500  # records per pipeline
SLICE = 20_000  # records per task handed to a populating process
TARGET_P99_MS = {"/license/<plate>?fuzzy=2": 10}  # else 5 ms


def plate_of(i: int) -> str:
    n, text = (i * 1_000_003) % 36**7, ""  # distinct for i < 36^7 (the multiplier is prime)
    for _ in range(7):
        n, digit = divmod(n, 36)
        text += _BASE36[digit]
    return text


def digests_of(i: int) -> Digests:
    return Digests.of(f"bench-image-{i}".encode())


def bench_image(i: int) -> dict:
    """Stored image `i`: a name, a geotag and its own plate, as import_analysed takes it."""
    reading = {"plate": plate_of(i), "confidence": 0.9, "box": {"x": 1, "y": 2, "w": 90, "h": 30},
               "candidates": []}
    results = {"exif": {"make": "Bench", "model": "One", "taken_at": None},
               "geotag": {"latitude": 40.0, "longitude": -105.2}, "plates": [reading], "faces": []}
    return {"digests": digests_of(i), "size": 100_000, "name": f"car-{i}.jpg",
            "format": "JPEG", "width": 1280, "height": 720, "results": results,
            "camera_label": "Bench - One"}


def populate_range(store: ImageStore, start: int, stop: int) -> int:
    """Images `start` to `stop - 1`, BATCH per round trip."""
    for first in range(start, stop, BATCH):
        store.import_analysed([bench_image(i) for i in range(first, min(stop, first + BATCH))])
    return stop - start


def _populate_slice(task: tuple[dict, int, int]) -> int:
    env, start, stop = task
    return populate_range(ImageStore(connect_redis(Settings.from_env(env))), start, stop)


def populate(env: dict, count: int, processes: int, slice_size: int = SLICE) -> float:
    """Write `count` images with `processes` processes; records per second."""
    started = time.perf_counter()
    tasks = [(env, start, min(count, start + slice_size)) for start in range(0, count, slice_size)]
    done = 0
    with ProcessPoolExecutor(max(1, processes)) as pool:
        for written in pool.map(_populate_slice, tasks):
            done += written
            if done % 100_000 < slice_size or done == count:
                print(f"  {done:,} records, {done / elapsed(started):,.0f}/s", file=sys.stderr, flush=True)
    return count / elapsed(started)


def fuzzed(plate: str, rng: random.Random) -> str:
    """One lookalike swap and one dropped character: two edits away."""
    swaps = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "O": "0", "I": "1"}
    i = rng.randrange(len(plate))
    plate = plate[:i] + swaps.get(plate[i], plate[i]) + plate[i + 1:]
    j = rng.randrange(len(plate))
    return plate[:j] + plate[j + 1:]


def request_lists(count: int, rng: random.Random) -> dict[str, list[str]]:
    """Per query row, the paths wrk cycles through: 2,000 stored images picked at random."""
    sample = rng.sample(range(count), min(2000, count))
    digests = [digests_of(i) for i in sample]
    return {
        "/hash/<md5>": [f"/hash/{d.md5}" for d in digests],
        "/license/<plate>": [f"/license/{plate_of(i)}" for i in sample],
        "/license/<plate>?fuzzy=2": [f"/license/{fuzzed(plate_of(i), rng)}?fuzzy=2" for i in sample],
        "/images/<sha256>": [f"/images/{d.sha256}" for d in digests],
    }


def query_rows(env: dict, rest: str, args, light_ref: dict | None, pids: dict[str, int]) -> list[tuple]:
    """`pids`: the process trees whose CPU per request the notes give (name -> pid)."""
    client = connect_redis(Settings.from_env(env))
    client.flushall()
    # Nothing here is about durability: without the append-only file, no rewrite of
    # gigabytes forks and writes in the middle of the measurement. On again for later rows.
    appendonly = client.config_get("appendonly")["appendonly"]
    client.config_set("appendonly", "no")
    try:
        return _measured_queries(client, env, rest, args, light_ref, pids)
    finally:
        client.flushall()
        client.config_set("appendonly", appendonly)


def _measured_queries(client, env: dict, rest: str, args, light_ref: dict | None,
                      pids: dict[str, int]) -> list[tuple]:
    before = client.info("memory")["used_memory"]
    rate = populate(env, args.images, args.populate_processes)
    per_image = (client.info("memory")["used_memory"] - before) / args.images
    reference = f"; bare /healthz p99 {light_ref['p99_us'] / 1000:.1f} ms" if light_ref else ""
    rows = []
    for name, lines in request_lists(args.images, random.Random(7)).items():
        summary = wrk_with_cpu(rest, lines, pids, connections=8, seconds=args.seconds)
        cpu = ", ".join(f"{process} {ms:.2f}" for process, ms in summary["cpu_ms"].items())
        rows.append((f"GET {name}, {args.images:,} images, 8 conns", rate_text(summary),
                     f"p99 target {TARGET_P99_MS.get(name, 5)} ms{reference}", "",
                     f"{summary['non2xx']} non-2xx; CPU ms per request: {cpu}"))
    rows.append(("Redis memory per image record", f"{per_image:,.0f} bytes", "", "",
                 f"{args.images:,} records written at {rate:,.0f}/s ({args.populate_processes} processes)"))
    return rows
