"""Where an upload's CPU goes: each step of `accept_image` timed alone, in one process.

    .venv/bin/python bench/upload_steps.py [--uploads 800]
    .venv/bin/python bench/upload_steps.py --left-out [--uploads 150 --rounds 3]

Starts its own Redis and RabbitMQ, makes the REST app (default settings: the blob store is
Redis, as in `bench/throughput.py`), and times with the process's CPU clock: the image check,
the three digests, the blob write, the record, the confirmed publish, then whole uploads and
a few light requests through Flask's test client (whose own request building is included).
Uses the US photo nearest 107 KB, as the throughput bench does, each upload with distinct
bytes (a comment segment), so that every record is new.

`--left-out` compares, in each of `--rounds` rounds, each step timed alone in a loop with
what leaving it out of whole uploads saves: whole uploads through the test client, then the
same with that step replaced by a stand-in that does nothing (and with all four). All in
the request thread's CPU time (`time.thread_time`: the publisher's and log threads are not
in it). The first row is the whole upload, the last what leaving all four out saves.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from stack import RabbitServer, RedisServer  # stack puts the repository on the path
from throughput import upload_photo, variant


def cpu_ms_each(action, items, clock=time.process_time) -> float:
    started = clock()
    for item in items:
        action(item)
    return (clock() - started) / len(items) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=800, help="uploads per step (or per variant)")
    parser.add_argument("--left-out", action="store_true", help="each step left out of whole uploads in turn")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the --left-out variants")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="imagescan-steps-"))
    redis_server, rabbit = RedisServer(root).start(), RabbitServer(root).start()
    try:
        os.environ.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_server.port),
                          RABBITMQ_HOST="127.0.0.1", RABBITMQ_PORT=str(rabbit.port))
        if args.left_out:
            print("| step | alone in a loop | saved when left out of whole uploads |")
            for name, alone, saved in left_out(args.uploads, args.rounds):
                print(f"| {name} | {_spread(alone)} | {_spread(saved)} |")
        else:
            for step, ms in measure(args.uploads):
                print(f"| {step} | {ms:.3f} |")
    finally:
        rabbit.shutdown()
        redis_server.stop()


def _spread(figures: list[float]) -> str:
    """Median, and the range over the rounds."""
    if not figures:
        return ""
    return f"{statistics.median(figures):.3f} ({min(figures):.3f} to {max(figures):.3f})"


def _rest_app():
    """The REST app (default settings), its test client and services, after one upload:
    connections opened, scripts loaded."""
    from rest.app import create_app

    app = create_app()
    client = app.test_client()
    client.put("/image/warm-up.jpg", data=variant(upload_photo(), "warm-up"))
    return app, client, app.extensions["imagescan"]


def _timed_steps(services) -> dict:
    """The steps of `accept_image` timed alone: name -> step(body, its digests)."""
    from imagescan import imaging, topology

    return {
        "the image check": lambda body, digests: imaging.inspect(body, 10**8),
        "the blob write": lambda body, digests: services.blobs.put(digests.sha256, body, "image/jpeg"),
        "the record": lambda body, digests: services.store.register_upload(digests, len(body), "a.jpg"),
        "the confirmed publish": lambda body, digests: services.publisher.publish(topology.ANALYZE,
                                                                                  sha256=digests.sha256),
    }


def _each_step(app, steps: dict, items: list, clock=time.process_time) -> dict[str, float]:
    """CPU ms per call of each step over `items` ((body, digests) pairs), in the app's context."""
    with app.app_context():
        return {name: cpu_ms_each(lambda item, step=step: step(*item), items, clock) for name, step in steps.items()}


def measure(count: int) -> list[tuple[str, float]]:
    from imagescan.digests import Digests

    app, client, services = _rest_app()
    photo = upload_photo()
    bodies = [variant(photo, f"steps-{i}") for i in range(2 * count)]
    items = [(body, Digests.of(body)) for body in bodies[:count]]
    digests = [d for _, d in items]
    rows = list(_each_step(app, _timed_steps(services), items).items())
    rows.insert(1, ("MD5 + SHA-224 + SHA-256", cpu_ms_each(Digests.of, bodies[:count])))
    rows.append(("whole PUT /image (test client)",
                 cpu_ms_each(lambda body: client.put("/image/b.jpg", data=body), bodies[count:])))
    rows.append(("GET /healthz (test client)", cpu_ms_each(lambda _: client.get("/healthz"), digests)))
    rows.append(("GET /hash/<md5> (test client)", cpu_ms_each(lambda d: client.get(f"/hash/{d.md5}"), digests)))
    rows.append(("GET /images/<md5> (test client)", cpu_ms_each(lambda d: client.get(f"/images/{d.md5}"), digests)))
    return rows


def left_out(count: int, rounds: int) -> list[tuple[str, list[float], list[float]]]:
    """Per step: (name, its request-thread CPU ms alone in a loop, what leaving it out of
    whole uploads saved), one figure per round; first the whole upload, last all steps out."""
    from imagescan import imaging
    from imagescan.digests import Digests
    from rest import ingest

    app, client, services = _rest_app()
    steps = _timed_steps(services)
    photo = upload_photo()
    info = imaging.inspect(photo, 10**8)
    stand_ins = {  # name -> (object, attribute, what replaces it in whole uploads)
        "the image check": (ingest, "validate_image", lambda data: info),
        "the blob write": (services.blobs, "put", lambda *args, **kwargs: None),
        "the record": (services.store, "register_upload", lambda *args, **kwargs: (True, "queued")),
        "the confirmed publish": (services.publisher, "publish", lambda *args, **kwargs: None),
    }
    counter = itertools.count()

    def fresh() -> list[bytes]:
        return [variant(photo, f"left-out-{next(counter)}") for _ in range(count)]

    def uploads_without(names) -> float:
        batch = fresh()
        with contextlib.ExitStack() as replaced:
            for name in names:
                replaced.enter_context(mock.patch.object(*stand_ins[name]))
            return cpu_ms_each(lambda body: client.put("/image/b.jpg", data=body), batch, clock=time.thread_time)

    whole, nothing, alone, saved = [], [], {name: [] for name in steps}, {name: [] for name in steps}
    for _ in range(rounds):
        whole.append(uploads_without([]))
        for name, step in steps.items():
            batch = [(body, Digests.of(body)) for body in fresh()]
            alone[name].append(_each_step(app, {name: step}, batch, time.thread_time)[name])
            saved[name].append(whole[-1] - uploads_without([name]))
        nothing.append(uploads_without(list(steps)))
    return ([("whole PUT /image", whole, [])] + [(name, alone[name], saved[name]) for name in steps]
            + [("all four left out", nothing, [w - n for w, n in zip(whole, nothing)])])


if __name__ == "__main__":
    main()
