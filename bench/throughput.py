"""Throughput, each figure next to its reference measured in the same run; one table.

    .venv/bin/python bench/throughput.py                  # about 4 minutes on 2 cores
    .venv/bin/python bench/throughput.py --images 1000000 --backlog 10000 --photos 20 --seconds 20
    .venv/bin/python bench/throughput.py --only queries --images 1000000   # the query rows alone

Starts its own Redis, RabbitMQ, REST (gunicorn: 2 processes x 8 threads, as deployed), the
bare reference app under the same gunicorn settings, and one worker; wrk is the client.
Rows:
  ingest       PUT /image/<name>, distinct JPEGs, 16 connections; imagescan vs the bare app
               (reads the body, hashes it). Every 2xx is checked against the work queue:
               the queue must hold one confirmed message per 2xx.
  light        GET /healthz, 8 connections; vs the bare app's /healthz.
  queries      /hash, /license, /license?fuzzy=2, /images at 8 connections with --images
               records written through ImageStore (each with its own plate; see queries.py);
               p99 vs target. Also: bytes of Redis memory per stored image record (with its
               plate and indexes, without the original's bytes, which go to the blob store).
  analysis     images analysed per second end to end (upload -> done, one worker process)
               vs the same engines on the same photos in one process, nothing else.
  priority     seconds for a job submitted through /jobs to complete while --backlog bulk
               images wait in the bulk lane.
  memory       resident memory of the REST (all gunicorn processes) and the worker
               (always printed, for what ran).
`--only ROW,ROW` measures those rows alone (the query rows need no RabbitMQ, none starts).
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pika
import requests
from PIL import Image
from queries import query_rows
from stack import REPO_ROOT, Stack, elapsed, rate_text, rss_mb, wait_for, wrk_with_cpu

from imagescan import topology
from imagescan.broker import Publisher
from imagescan.config import Settings
from imagescan.digests import Digests
from imagescan.store import DONE, FAILED, ImageStore, connect_redis
from tests.conftest import queue_depth

PHOTOS = REPO_ROOT.parent / "shared" / "data" / "plates" / "us"


def variant(photo: bytes, tag: str) -> bytes:
    """The same JPEG with a comment segment saying `tag`: distinct bytes, same pixels."""
    comment = tag.encode()
    return photo[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + photo[2:]


def photos(limit: int) -> list[bytes]:
    return [path.read_bytes() for path in sorted(PHOTOS.glob("*.jpg"))[:limit]]


def upload_photo() -> bytes:
    """The photo nearest 107 KB: the size of the uploads the first figures were taken with."""
    return min(PHOTOS.glob("*.jpg"), key=lambda path: abs(path.stat().st_size - 107_000)).read_bytes()


def thumbnail(photo: bytes, width: int = 320) -> bytes:
    image = Image.open(io.BytesIO(photo))
    image.thumbnail((width, width))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def purge(settings: Settings, *queues: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters(settings.rabbitmq_host, settings.rabbitmq_port))
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_purge(queue)
    finally:
        connection.close()


# -- rows ----------------------------------------------------------------------


def cpu_note(measured: dict, reference: dict) -> str:
    """CPU per request of the REST next to the bare app's, and of Redis and RabbitMQ."""
    rest, bare = measured["cpu_ms"]["rest"], reference["cpu_ms"]["bare"]
    backends = "".join(f", {name} {ms:.2f}" for name, ms in measured["cpu_ms"].items() if name not in ("rest", "bare"))
    return f"CPU ms per request: REST {rest:.2f}, bare app {bare:.2f} (ratio {bare / rest:.2f}){backends}"


def upload_lines(directory: Path, count: int, tag: str) -> list[str]:
    """`count` distinct variants of the upload photo written into `directory`, as wrk.lua's
    list: one `PUT` path and body file per line."""
    directory.mkdir()
    photo, lines = upload_photo(), []
    for i in range(count):
        path = directory / f"{i}.jpg"
        path.write_bytes(variant(photo, f"{tag}-{i}"))
        lines.append(f"/image/bench-{i}.jpg\t{path}")
    return lines


def ingest_rows(stack, settings, rest, bare, args, pids) -> list[tuple]:
    photo, lines = upload_photo(), upload_lines(stack.root / "bodies", args.bodies, "ingest")
    reference = wrk_with_cpu(bare, lines, {"bare": pids["bare"]}, connections=16, seconds=args.seconds, method="PUT")
    measured = wrk_with_cpu(rest, lines, {name: pid for name, pid in pids.items() if name != "bare"},
                            connections=16, seconds=args.seconds, method="PUT")
    # wrk stops counting at the deadline with requests in flight, so the queue may hold a few more.
    queued = wait_for(lambda: (n := queue_depth(settings, topology.WORK_QUEUE)) >= measured["ok"] and n,
                      30, "the queue to hold a confirmed message for every 2xx")
    kb = len(photo) // 1024
    return [(f"PUT /image, {kb} KB JPEGs, 16 conns", rate_text(measured), rate_text(reference),
             f"{measured['rate'] / reference['rate']:.2f}",
             f"{measured['non2xx']} non-2xx; {queued} confirmed messages for {measured['ok']} 2xx; "
             + cpu_note(measured, reference))]


def light_rows(rest, bare, args, pids) -> tuple[list[tuple], dict]:
    light_ref = wrk_with_cpu(bare, ["/healthz"], {"bare": pids["bare"]}, connections=8, seconds=args.seconds)
    light = wrk_with_cpu(rest, ["/healthz"], {"rest": pids["rest"]}, connections=8, seconds=args.seconds)
    return [("GET /healthz, 8 conns", rate_text(light), rate_text(light_ref),
             f"{light['rate'] / light_ref['rate']:.2f}", cpu_note(light, light_ref))], light_ref


def analysis_in_this_process(settings):
    """decode + plates + faces of one photo, with the worker's engines and settings, warmed up."""
    from imagescan import imaging
    from imagescan.analyzers import load_face_recognizer, load_plate_recognizer
    from imagescan.analyzers.kinds.faces import engine_options

    plates = load_plate_recognizer(settings.plate_engine, region=settings.plate_region)
    faces = load_face_recognizer(settings.face_engine, **engine_options(settings))

    def analyse(data: bytes) -> None:
        decoded = imaging.decode(data, settings.max_image_pixels)
        plates.recognize(decoded.pixels)
        faces.detect(decoded.pixels)

    return analyse


def pure_analysis_rate(analyse, samples: list[bytes]) -> float:
    """Images per second of `analyse` over the photos, nothing else."""
    analyse(samples[0])  # first call warms the engines up
    started = time.perf_counter()
    for data in samples:
        analyse(data)
    return len(samples) / elapsed(started)


def wait_done(store: ImageStore, sha256s: list[str], timeout: float) -> None:
    wait_for(lambda: all(store.status(s) in (DONE, FAILED) for s in sha256s), timeout,
             "the analyses", interval=0.1)


def analysis_rows(stack, settings, rest, worker, args) -> list[tuple]:
    samples = photos(args.photos)
    analyse = analysis_in_this_process(settings)
    pure_before = pure_analysis_rate(analyse, samples)
    store = ImageStore(connect_redis(settings))
    session = requests.Session()
    warm = variant(samples[0], "warm-up")
    session.put(f"{rest}/image/warm.jpg", data=warm).raise_for_status()
    wait_done(store, [Digests.of(warm).sha256], 300)
    started = time.perf_counter()
    uploads = [variant(data, "e2e") for data in samples]
    for i, data in enumerate(uploads):
        session.put(f"{rest}/image/e2e-{i}.jpg", data=data).raise_for_status()
    wait_done(store, [Digests.of(d).sha256 for d in uploads], 60 + 10 * len(uploads))
    end_to_end = len(uploads) / elapsed(started)
    # Measured before and after the end-to-end run, so that a change of the machine's load
    # during the run moves both sides alike.
    pure = (pure_before + pure_analysis_rate(analyse, samples)) / 2
    return [(f"images analysed/s, {len(samples)} photos, 1 worker process", f"{end_to_end:.2f}/s",
             f"{pure:.2f}/s in one process", f"{end_to_end / pure:.2f}",
             f"pure rate before/after: {pure_before:.2f}/{2 * pure - pure_before:.2f}/s")]


def enqueue_bulk(settings, count: int, photo: bytes) -> None:
    """`count` distinct small images queued on the bulk lane, through the project's ingest code."""
    from imagescan.store import open_storage

    _, store, blobs = open_storage(settings)
    publisher = Publisher(settings)

    def one(i: int) -> None:
        data = variant(photo, f"bulk-{i}")
        digests = Digests.of(data)
        blobs.put(digests.sha256, data)
        store.register_upload(digests, len(data), f"bulk-{i}.jpg")
        publisher.publish(topology.ANALYZE, sha256=digests.sha256, bulk=True)

    try:
        with ThreadPoolExecutor(8) as pool:
            for _ in pool.map(one, range(count), chunksize=64):
                pass
    finally:
        publisher.close()


def priority_rows(settings, rest, args) -> list[tuple]:
    samples = photos(2)
    enqueue_bulk(settings, args.backlog, thumbnail(samples[0]))
    waiting = queue_depth(settings, topology.BULK_QUEUE)
    started = time.perf_counter()
    job = variant(samples[-1], "interactive-job")
    response = requests.post(f"{rest}/jobs", files={"image": ("job.jpg", job)})
    response.raise_for_status()
    location = rest + response.json()["location"]
    status = wait_for(lambda: (s := requests.get(location).json().get("status")) in ("completed", "failed") and s,
                      120, "the job")
    took = elapsed(started)
    left = queue_depth(settings, topology.BULK_QUEUE)
    purge(settings, topology.BULK_QUEUE)
    return [(f"job through /jobs behind {waiting:,} bulk images", f"{took:.1f} s ({status})", "target 10 s",
             "", f"{left:,} bulk images still waiting when it completed")]


ROWS = ("ingest", "light", "queries", "analysis", "priority")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="length of each wrk run")
    parser.add_argument("--bodies", type=int, default=1000, help="distinct upload bodies")
    parser.add_argument("--images", type=int, default=100_000, help="stored images for the query rows")
    parser.add_argument("--populate-processes", type=int, default=os.cpu_count() or 2,
                        help="processes writing the stored images of the query rows")
    parser.add_argument("--photos", type=int, default=6, help="photos for the analysis row")
    parser.add_argument("--backlog", type=int, default=10_000, help="bulk images queued for the priority row")
    parser.add_argument("--only", default=",".join(ROWS),
                        help=f"comma-separated rows to measure, of {','.join(ROWS)} (default: all)")
    args = parser.parse_args(argv)
    args.only = [row.strip() for row in args.only.split(",") if row.strip()]
    unknown = set(args.only) - set(ROWS)
    if unknown or not args.only:
        parser.error(f"--only takes rows of {','.join(ROWS)}, not {','.join(sorted(unknown)) or 'nothing'}")
    return args


def measure(stack: Stack, args) -> list[tuple]:
    settings = Settings.from_env(stack.env())
    only = set(args.only)
    rest_process, rest = stack.http_service(["-m", "rest"])
    bare_process, bare = stack.http_service(["bench/bare_app.py"]) if only & {"ingest", "light"} else (None, "")
    rows, light_ref, worker = [], None, None
    pids = {"rest": rest_process.pid, "bare": bare_process.pid if bare_process else 0,
            "Redis": stack.redis.process.pid, "RabbitMQ": stack.rabbit.process.pid if stack.rabbit else 0}
    if "ingest" in only:
        rows += ingest_rows(stack, settings, rest, bare, args, pids)
        stack.redis.client().flushall()
        purge(settings, topology.WORK_QUEUE)
    if "light" in only:
        light, light_ref = light_rows(rest, bare, args, pids)
        rows += light
    memory = [f"REST {rss_mb(rest_process.pid):.0f} MiB (2 processes)"]
    if "queries" in only:
        rows += query_rows(stack.env(), rest, args, light_ref, {name: pids[name] for name in ("rest", "Redis")})
    if only & {"analysis", "priority"}:
        worker = stack.start(["-m", "worker"])
    if "analysis" in only:
        rows += analysis_rows(stack, settings, rest, worker, args)
    if "priority" in only:
        rows += priority_rows(settings, rest, args)
    memory.append(f"worker {rss_mb(worker.pid):.0f} MiB" if worker else "")
    bare_rss = f"bare app {rss_mb(bare_process.pid):.0f} MiB" if bare_process else ""
    return rows + [("resident memory", *memory, "", bare_rss)]


def main(argv=None) -> int:
    args = parse_args(argv)
    # The query rows alone need no broker: nothing is uploaded or analysed.
    stack = Stack(rabbit=bool(set(args.only) - {"queries"}))
    try:
        rows = measure(stack, args)
    finally:
        stack.stop()
    print("| what | imagescan | reference, same run | ratio | notes |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
