"""Face matching benchmark: /match quality on labelled photos, and range-query speed.

Quality: every usable labelled photo (labels.csv ``use`` = 1: one labelled face; byte-identical
duplicates, ``use`` = 0, are the same image to the service and are skipped; group photos,
``use`` = -1, carry no identity and are skipped) is detected and encoded, all encodings go into
one in-memory EncodingMatrix (the structure FaceIndex keeps per worker), and each photo asks
what /match would answer: the other photos with a face within the tolerance.

Each set (the first folder of the path: face_recognition, openface, lfw, faceapi, azure) is
scored as its own index, and all of them together in one index (cross-set false matches count).

* a returned (photo, other photo) pair is correct when both photos show the same identity;
* a picture saved twice (re-encoded, so not byte-identical; azure's person-group photos are
  seven of its family photos again) is one photo: the later copy is left out, as labels.csv
  leaves out byte-identical copies, and when the copies carry different labels the labels
  are merged (the same pixels show the same person; see same_picture_duplicates). Keeping
  both copies would add a trivially right pair at distance 0 per copy;
* faces marked not matchable (too small or blurred) are never matched, as in the service;
* precision = correct returned pairs / returned pairs;
* recall    = correct returned pairs / ordered pairs of distinct photos sharing an identity
  (a photo whose face is not detected misses all its pairs).

Speed: a synthetic matrix of 1e5 and 1e6 encodings; one range query with EncodingMatrix
versus face_recognition.compare_faces over a Python list of arrays.

    python bench/faces.py [--data DIR] [--tolerance 0.55 0.6] [--sizes 100000 1000000]
                          [--redis-url redis://127.0.0.1:6379/15 --redis-faces 1000000]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from PIL import Image, ImageOps

from imagescan.analyzers import load_face_recognizer
from imagescan.faceindex import DEFAULT_TOLERANCE, ENCODING_SIZE, EncodingMatrix

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "faces"
SAME_PICTURE = 0.02  # encodings this close come from the same pixels


def labelled_photos(data: Path) -> list[tuple[str, str]]:
    with open(data / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    return [(row[0], row[1]) for row in rows[1:] if row and row[3].strip() == "1"]


def encode_photos(data: Path, photos, max_side: int, options: dict | None = None):
    recognizer = load_face_recognizer("dlib", max_side=max_side, **(options or {}))
    encodings: dict[str, list[np.ndarray]] = {}
    seconds: list[float] = []
    for path, _identity in photos:
        with Image.open(data / path) as image:
            rgb = ImageOps.exif_transpose(image).convert("RGB")
        started = time.perf_counter()
        faces = recognizer.detect(rgb)
        seconds.append(time.perf_counter() - started)
        encodings[path] = [np.asarray(face.encoding, dtype=np.float32) for face in faces if face.matchable]
        if len(encodings[path]) < len(faces):
            print(f"  {path}: {len(faces) - len(encodings[path])} face(s) marked not matchable")
    return encodings, seconds


def group_photos(data: Path) -> list[str]:
    with open(data / "labels.csv", newline="") as handle:
        return [row[0] for row in list(csv.reader(handle))[1:] if row and row[3].strip() == "-1"]


def group_answers(data: Path, groups: list[str], photos, encodings, tolerance: float, max_side: int) -> None:
    """Not scored (group photos carry no labels): which identities each group photo matches."""
    identity = dict(photos)
    matrix = EncodingMatrix()
    for path in identity:  # the scored photos (a picture saved twice counts once)
        if encodings[path]:
            matrix.append(np.stack(encodings[path]), [path] * len(encodings[path]))
    group_encodings, _ = encode_photos(data, [(path, "MULTI") for path in groups], max_side)
    for path in groups:
        faces = group_encodings[path]
        answer = matrix.within(np.stack(faces), tolerance) if faces else {}
        people = Counter(identity[other] for other in answer)
        print(
            f"  group {path}: {len(faces)} faces -> "
            + (", ".join(f"{name} x{n}" for name, n in sorted(people.items())) or "no match")
        )


def same_picture_duplicates(photos, encodings) -> list[tuple[str, str]]:
    """A later photo whose single face is at distance ~0 from an earlier photo's is the same
    picture saved again: it is left out (the first copy stays), and if it was labelled as
    someone else, that label is merged into the first copy's (the azure set's person-group
    photos are its family photos again). Returns the (left out, kept) pairs."""
    identity = dict(photos)
    single = [path for path, _ in photos if len(encodings[path]) == 1]
    dropped: dict[str, str] = {}
    for a, b in combinations(single, 2):
        if a in dropped or b in dropped:
            continue
        if np.linalg.norm(encodings[a][0] - encodings[b][0]) < SAME_PICTURE:
            old, new = identity[b], identity[a]
            identity = {path: new if name == old else name for path, name in identity.items()}
            dropped[b] = a
    photos[:] = [(path, identity[path]) for path, _ in photos if path not in dropped]
    return sorted(dropped.items())


def set_of(path: str) -> str:
    return path.split("/")[0] if "/" in path else "."


def pair_counts(photos, encodings, tolerance: float) -> tuple[int, int, int, list]:
    """Returned, correct and relevant ordered pairs of /match answers among these photos."""
    identity = dict(photos)
    matrix = EncodingMatrix()
    for path, _ in photos:
        if encodings[path]:
            matrix.append(np.stack(encodings[path]), [path] * len(encodings[path]))
    returned = correct = 0
    wrong_pairs = []
    for path, _ in photos:
        faces = encodings[path]
        answer = matrix.within(np.stack(faces), tolerance, exclude_owner=path) if faces else {}
        for other, distance in answer.items():
            returned += 1
            if identity[other] == identity[path]:
                correct += 1
            else:
                wrong_pairs.append((path, other, distance))
    relevant = sum(1 for a, b in combinations(identity, 2) if identity[a] == identity[b]) * 2
    return returned, correct, relevant, wrong_pairs


def quality(photos, encodings, tolerance: float) -> None:
    """Precision and recall per set (each set its own index) and over all sets in one index."""
    labels = dict(photos)
    dropped = same_picture_duplicates(photos, encodings)
    if dropped:
        print("the same picture saved twice, later copy left out (labels merged where they differ):")
        print("  " + ", ".join(f"{a} ({labels[a]}) = {b} ({labels[b]})" for a, b in dropped))
    sets = sorted({set_of(path) for path, _ in photos})
    print(f"tolerance {tolerance}")
    print("set               photos  ids  no face  returned  correct  relevant  precision  recall")
    all_wrong = []
    for name in [*sets, "all"]:
        chosen = [(p, i) for p, i in photos if name in ("all", set_of(p))]
        returned, correct, relevant, wrong = pair_counts(chosen, encodings, tolerance)
        missing = sum(1 for p, _ in chosen if not encodings[p])
        precision = correct / returned if returned else float("nan")
        recall = correct / relevant if relevant else float("nan")
        print(
            f"{name:16s} {len(chosen):7d} {len({i for _, i in chosen}):4d} {missing:8d} {returned:9d} "
            f"{correct:8d} {relevant:9d}  {precision:9.3f}  {recall:6.3f}"
        )
        if name == "all":
            all_wrong = wrong
    identity = dict(photos)
    same, different = [], []
    for a, b in combinations([p for p in identity if len(encodings[p]) == 1], 2):
        distance = float(np.linalg.norm(encodings[a][0].astype(np.float64) - encodings[b][0]))
        (same if identity[a] == identity[b] else different).append(distance)
    if same and different:
        print(
            f"distance same person: median {statistics.median(same):.3f} max {max(same):.3f}; "
            f"different people: median {statistics.median(different):.3f} min {min(different):.3f}"
        )
        print_reliability(same, different)
    for path, other, distance in sorted(all_wrong, key=lambda item: item[2])[:10]:
        print(f"  wrong: {path} ~ {other} at {distance:.3f}")


def print_reliability(same: list[float], different: list[float]) -> None:
    """match_confidence against the share of same-person pairs, by confidence (all sets)."""
    from imagescan.faceconfidence import match_confidence

    pairs = [(match_confidence(d), 1) for d in same] + [(match_confidence(d), 0) for d in different]
    print("match confidence   pairs  same person  mean confidence")
    for low, high in ((0.0, 0.05), (0.05, 0.5), (0.5, 0.9), (0.9, 0.99), (0.99, 1.01)):
        chosen = [(c, y) for c, y in pairs if low <= c < high]
        if chosen:
            share = sum(y for _, y in chosen) / len(chosen)
            mean = sum(c for c, _ in chosen) / len(chosen)
            print(f"  {low:.2f}-{min(high, 1.0):.2f}      {len(chosen):6d}  {share:11.3f}  {mean:15.3f}")


def parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        options[key] = float(value) if "." in value else int(value)
    return options


def synthetic_encodings(count: int, rng: np.random.Generator) -> np.ndarray:
    # dlib encodings have norms near 1 with components around +-0.1
    block = rng.normal(scale=0.09, size=(count, ENCODING_SIZE)).astype(np.float32)
    return block


def speed(sizes: list[int], queries: int, tolerance: float) -> None:
    import face_recognition

    rng = np.random.default_rng(0)
    print(f"range query speed (tolerance {tolerance}, {queries} queries, median per query):")
    for size in sizes:
        encodings = synthetic_encodings(size, rng)
        owners = [f"img{row // 2}" for row in range(size)]  # two faces per image
        probes = encodings[rng.choice(size, queries, replace=False)] + rng.normal(
            scale=0.01, size=(queries, ENCODING_SIZE)
        ).astype(np.float32)

        matrix = EncodingMatrix()
        started = time.perf_counter()
        for start in range(0, size, 2000):  # the way sync() loads: chunks, doubling growth
            matrix.append(encodings[start : start + 2000], owners[start : start + 2000])
        load_seconds = time.perf_counter() - started

        matrix_times, hits = [], []
        for probe in probes:
            started = time.perf_counter()
            found = matrix.within(probe, tolerance)
            matrix_times.append(time.perf_counter() - started)
            hits.append(len(found))

        as_list = list(encodings)
        baseline_times = []
        for probe in probes[: max(1, queries // 5)]:
            started = time.perf_counter()
            flags = face_recognition.compare_faces(as_list, probe, tolerance=tolerance)
            baseline_times.append(time.perf_counter() - started)
        baseline_hits = {owners[row] for row, flag in enumerate(flags) if flag}
        assert baseline_hits == set(matrix.within(probe, tolerance)), "both methods must agree"

        fast, slow = statistics.median(matrix_times), statistics.median(baseline_times)
        print(
            f"  {size:>9,} faces: EncodingMatrix {fast * 1000:8.2f} ms   "
            f"compare_faces(list) {slow * 1000:9.1f} ms   x{slow / fast:,.0f}   "
            f"(load in 2000-row chunks {load_seconds:.2f} s, {matrix.size * ENCODING_SIZE * 4 / 2**20:.0f} MiB; "
            f"median hits {statistics.median(hits):.0f})"
        )
        del as_list, matrix, encodings


def redis_sync(url: str, size: int, tolerance: float) -> None:
    """Rebuild time of a FaceIndex from Redis, and one add_image_faces, at ``size`` faces.

    Needs an EMPTY Redis database (e.g. redis://127.0.0.1:6379/15), which it flushes at the end.
    """
    import redis
    from face_tier_worker import fill_partitions  # bench/ is on the path of a bench script

    from imagescan.analyzers import Box, FaceFound
    from imagescan.faceindex import FaceIndex

    client = redis.Redis.from_url(url)
    if client.dbsize():
        raise SystemExit(f"{url} is not empty; give an empty database")
    try:
        rng = np.random.default_rng(1)
        encodings = synthetic_encodings(size, rng)
        started = time.perf_counter()
        fill_partitions(client, encodings.astype("<f4"))  # the face partitions, as FaceStore writes them
        fill_seconds = time.perf_counter() - started

        index = FaceIndex(client, tolerance)
        started = time.perf_counter()
        loaded = index.sync()
        sync_seconds = time.perf_counter() - started

        face = FaceFound(box=Box(0, 0, 10, 10), encoding=tuple((encodings[123] + 0.01).tolist()))
        started = time.perf_counter()
        found = index.add_image_faces("f" * 64, [face])
        add_seconds = time.perf_counter() - started
        print(
            f"redis: {size:,} faces filled in {fill_seconds:.1f} s; FaceIndex.sync() rebuilt {loaded:,} in "
            f"{sync_seconds:.2f} s; add_image_faces (Lua + catch-up + query + ZADD) {add_seconds * 1000:.1f} ms, "
            f"{len(found)} match(es)"
        )
    finally:
        client.flushdb()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding labels.csv")
    parser.add_argument("--tolerance", type=float, nargs="*", default=[DEFAULT_TOLERANCE])
    parser.add_argument("--max-side", type=int, default=1280)
    parser.add_argument("-o", "--option", action="append", default=[], help="recognizer option key=value")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--redis-url", help="an EMPTY Redis database to time FaceIndex.sync() against (flushed after)"
    )
    parser.add_argument("--redis-faces", type=int, default=1_000_000)
    args = parser.parse_args(argv)

    if not args.skip_quality:
        if not (args.data / "labels.csv").is_file():
            print(f"no labels.csv in {args.data}", file=sys.stderr)
            return 2
        photos = labelled_photos(args.data)
        encodings, seconds = encode_photos(args.data, photos, args.max_side, parse_options(args.option))
        print(
            f"detect+encode: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s per photo (max side {args.max_side})"
        )
        for tolerance in args.tolerance:
            quality(photos, encodings, tolerance)
        group_answers(args.data, group_photos(args.data), photos, encodings, args.tolerance[0], args.max_side)
    if args.sizes:
        speed(args.sizes, args.queries, args.tolerance[0])
    if args.redis_url:
        redis_sync(args.redis_url, args.redis_faces, args.tolerance[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
