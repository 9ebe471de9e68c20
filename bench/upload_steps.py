"""Where an upload's CPU goes: each step of `accept_image` timed alone, in one process.

    .venv/bin/python bench/upload_steps.py [--uploads 800]

Starts its own Redis and RabbitMQ, makes the REST app (default settings: the blob store is
Redis, as in `bench/throughput.py`), and times with the process's CPU clock: the image check,
the three digests, the blob write, the record, the confirmed publish, then whole uploads and
a few light requests through Flask's test client (whose own request building is included).
Uses the US photo nearest 107 KB, as the throughput bench does, each upload with distinct
bytes (a comment segment), so that every record is new.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from stack import RabbitServer, RedisServer  # stack puts the repository on the path
from throughput import upload_photo, variant


def cpu_ms_each(action, items) -> float:
    started = time.process_time()
    for item in items:
        action(item)
    return (time.process_time() - started) / len(items) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=800, help="uploads per step")
    count = parser.parse_args().uploads
    root = Path(tempfile.mkdtemp(prefix="imagescan-steps-"))
    redis_server, rabbit = RedisServer(root).start(), RabbitServer(root).start()
    try:
        os.environ.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_server.port),
                          RABBITMQ_HOST="127.0.0.1", RABBITMQ_PORT=str(rabbit.port))
        for step, ms in measure(count):
            print(f"| {step} | {ms:.3f} |")
    finally:
        rabbit.shutdown()
        redis_server.stop()


def measure(count: int) -> list[tuple[str, float]]:
    from imagescan import imaging, topology
    from imagescan.digests import Digests
    from rest.app import create_app

    app = create_app()
    client = app.test_client()
    services = app.extensions["imagescan"]
    photo = upload_photo()
    bodies = [variant(photo, f"steps-{i}") for i in range(2 * count + 1)]
    client.put("/image/warm-up.jpg", data=bodies[-1])  # connections opened, scripts loaded
    steps, digests = bodies[:count], [Digests.of(body) for body in bodies[:count]]
    indexes = range(count)
    with app.app_context():
        rows = [
            ("check the image (JPEG structure)", cpu_ms_each(lambda b: imaging.inspect(b, 10**8), steps)),
            ("MD5 + SHA-224 + SHA-256", cpu_ms_each(Digests.of, steps)),
            ("blob write", cpu_ms_each(lambda i: services.blobs.put(digests[i].sha256, steps[i], "image/jpeg"),
                                       indexes)),
            ("record", cpu_ms_each(lambda i: services.store.register_upload(digests[i], len(steps[i]), "a.jpg"),
                                   indexes)),
            ("confirmed publish", cpu_ms_each(
                lambda i: services.publisher.publish(topology.ANALYZE, sha256=digests[i].sha256), indexes)),
        ]
    rows.append(("whole PUT /image (test client)",
                 cpu_ms_each(lambda body: client.put("/image/b.jpg", data=body), bodies[count:2 * count])))
    rows.append(("GET /healthz (test client)", cpu_ms_each(lambda _: client.get("/healthz"), indexes)))
    rows.append(("GET /hash/<md5> (test client)", cpu_ms_each(lambda d: client.get(f"/hash/{d.md5}"), digests)))
    rows.append(("GET /images/<md5> (test client)", cpu_ms_each(lambda d: client.get(f"/images/{d.md5}"), digests)))
    return rows


if __name__ == "__main__":
    main()
