"""What the store's writes cost per image, one after another, on one private Redis.

    .venv/bin/python bench/store_roundtrips.py            # 2000 images
    .venv/bin/python bench/store_roundtrips.py -n 500

Starts `redis-server` on a free loopback port (no persistence), then, image by image, times
what the REST does for a new upload (`register_upload`) and what a worker writes for its
analysis (`mark_processing`, then `save_analysis` with one plate). Sequential on purpose: it
shows the round trips each write costs (the cluster-safe steps of imagescan.imagesteps), not
the throughput of many threads, which overlap them (bench/throughput.py). To compare with
another release, run the same file with that release's `imagescan` on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time

import redis

from imagescan.digests import Digests
from imagescan.store import ImageStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(store: ImageStore, count: int) -> tuple[float, float]:
    """(microseconds per upload, microseconds per analysis's writes)."""
    images = [Digests.of(os.urandom(64)) for _ in range(count)]
    started = time.perf_counter()
    for digests in images:
        store.register_upload(digests, 64, "photo.jpg")
    uploads = time.perf_counter() - started
    started = time.perf_counter()
    for number, digests in enumerate(images):
        store.mark_processing(digests.sha256)
        store.save_analysis(digests.sha256, format="JPEG", width=1, height=1, camera_label="Canon - X",
                            results={"plates": [{"plate": f"AB{number:05d}", "confidence": 0.9}]})
    analyses = time.perf_counter() - started
    return uploads / count * 1e6, analyses / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="images")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", data], stdout=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            upload, analysis = measure(ImageStore(client), args.n)
            print(f"{args.n} images: {upload:.0f} us per new upload, {analysis:.0f} us per analysis's writes")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
