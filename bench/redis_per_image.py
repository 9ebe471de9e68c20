"""How much Redis grows per uploaded photo with the local defaults (BLOB_STORE=dir).

    .venv/bin/python bench/redis_per_image.py                 # 1000 photos of about 2 MB
    .venv/bin/python bench/redis_per_image.py -n 200 --workers 2

Starts a private stack with `./deploy-all.sh local` (its own state directory and free ports;
recognition engines off, so only the pipeline and storage are measured), uploads N distinct
photos of about 2 MB, waits until every one is analysed, and prints Redis's growth per image:
used memory (INFO), the append-only file on disk, and for comparison the bytes the blob
directory took. Then it stops the stack and removes its state.

The photos are real ones from ../shared/data/plates, scaled up to phone size (about 8 MP)
with a little grain so they stay about 2 MB as JPEG; each upload differs from the others by
a JPEG comment segment holding its number (distinct digests, the same decodable photo).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy
import redis
import requests
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from imagescan import keys

SHARED_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "plates"
PHONE_SIZE = (3264, 2448)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def base_photos(count: int) -> list[bytes]:
    """Photo-sized JPEGs of about 2 MB made from real photos (or from noise without them)."""
    sources = sorted(SHARED_PHOTOS.rglob("*.jpg"))[:count]
    rng = numpy.random.default_rng(7)
    photos = []
    for source in sources or [None] * count:
        image = Image.open(source).convert("RGB") if source else Image.new("RGB", (64, 48), (90, 120, 150))
        pixels = numpy.asarray(image.resize(PHONE_SIZE, Image.Resampling.BICUBIC), dtype=numpy.int16)
        grain = rng.integers(-12, 13, pixels.shape, dtype=numpy.int16)
        buffer = io.BytesIO()
        Image.fromarray(numpy.clip(pixels + grain, 0, 255).astype(numpy.uint8)).save(buffer, "JPEG", quality=90)
        photos.append(buffer.getvalue())
    return photos


def numbered(photo: bytes, number: int) -> bytes:
    """The photo with a COM segment after SOI: another digest, the same picture."""
    comment = f"imagescan bench photo {number}".encode()
    return photo[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + photo[2:]


def redis_facts(client: redis.Redis, state: Path) -> dict:
    aof = sum(p.stat().st_size for p in (state / "redis").rglob("*") if p.is_file())
    return {"used_memory": client.info("memory")["used_memory"], "keys": client.dbsize(), "aof": aof}


def keys_of_image(sha256: str, md5: str, sha224: str) -> list[str]:
    return [keys.image(sha256), keys.image_names(sha256), keys.digest_alias(md5), keys.digest_alias(sha224)]


def bytes_per_image(client: redis.Redis, base: str, sha256s: list[str]) -> float:
    """MEMORY USAGE of the keys each image has (record, names, aliases), averaged."""
    total = 0
    for sha256 in sha256s:
        digests = requests.get(f"{base}/images/{sha256}", timeout=10).json()["digests"]
        total += sum(client.memory_usage(key, samples=0) or 0
                     for key in keys_of_image(sha256, digests["md5"], digests["sha224"]))
    return total / len(sha256s)


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_stack(env: dict, *args: str) -> None:
    result = subprocess.run([str(REPO_ROOT / "deploy-all.sh"), "local", *args], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"deploy-all.sh local {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def upload_all(base: str, photos: list[bytes], count: int, threads: int) -> list[str]:
    session = requests.Session()

    def upload(number: int) -> str:
        data = numbered(photos[number % len(photos)], number)
        response = session.post(f"{base}/image/bench-{number}.jpg", data=data, timeout=60)
        response.raise_for_status()
        return hashlib.sha256(data).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(upload, range(count)))


def wait_analysed(base: str, digests: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for digest in digests:
        while requests.get(f"{base}/images/{digest}", timeout=10).json()["status"] not in ("done", "failed"):
            if time.monotonic() > deadline:
                sys.exit(f"{digest} not analysed within {timeout:.0f}s")
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--images", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the stack")
    parser.add_argument("--threads", type=int, default=4, help="concurrent uploads")
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="imagescan-bench-"))
    env = {**os.environ, "IMAGESCAN_STATE_DIR": str(state), "PORT": str(free_port()),
           "REDIS_PORT": str(free_port()), "RABBITMQ_PORT": str(free_port()),
           "RABBITMQ_DIST_PORT": str(free_port()), "EPMD_PORT": str(free_port()),
           "WORKERS": str(args.workers), "PLATE_ENGINE": "none", "FACE_ENGINE": "none"}
    for name in ("BLOB_STORE", "BLOB_DIR"):
        env.pop(name, None)  # the local defaults
    photos = base_photos(8)
    print(f"base photos: {len(photos)}, {sum(map(len, photos)) / len(photos) / 1e6:.2f} MB on average")
    run_stack(env)
    try:
        client = redis.Redis(port=int(env["REDIS_PORT"]))
        base = f"http://127.0.0.1:{env['PORT']}"
        before = redis_facts(client, state)
        started = time.monotonic()
        digests = upload_all(base, photos, args.images, args.threads)
        uploaded = time.monotonic() - started
        wait_analysed(base, digests, timeout=max(600, args.images))
        after = redis_facts(client, state)
        own_keys = bytes_per_image(client, base, digests)
        blob_bytes = directory_bytes(state / "blobs")
    finally:
        run_stack(env, "down")
        shutil.rmtree(state, ignore_errors=True)
    n = len(set(digests))
    print(f"{n} distinct photos uploaded in {uploaded:.1f}s ({n / uploaded:.1f}/s), all analysed")
    print(f"blob directory: {blob_bytes / n / 1e6:.2f} MB per image")
    print(f"redis keys: {(after['keys'] - before['keys']) / n:.1f} per image (+ a few shared indexes)")
    print(f"redis keys of each image (MEMORY USAGE): {own_keys:.0f} bytes per image")
    print(f"redis used memory: {(after['used_memory'] - before['used_memory']) / n:.0f} bytes per image")
    print(f"redis append-only file: {(after['aof'] - before['aof']) / n:.0f} bytes per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
