"""Plate recognition benchmark on the labelled photos in ../shared/data/plates.

    .venv/bin/python bench/plates.py                      # us eu br, tune and holdout
    .venv/bin/python bench/plates.py us --split holdout --limit 20
    taskset -c 0 .venv/bin/python bench/plates.py -o det_max_side=960   # one core

Each set folder holds photos and one `.txt` per photo: `<file>\t<x>\t<y>\t<w>\t<h>\t<PLATE>`.
Two split rules, both about a quarter of each set held out: `fixed` (the one the
engine was tuned and its ranker trained with) holds a photo out when the first byte
of the SHA-1 of its file name is below 64; `fresh` when the first byte of the SHA-1
of "fresh:" + the file name is below 64 (a different quarter, to check that what
was learnt on one tune split carries over; train a ranker on the fresh tune split
with bench/train_plate_ranker.py --rule fresh and pass it with --ranker).

Columns: n photos; top-1 = the best plate equals the label (normalised); top-1 O=0
also counts a best plate that differs from the label only by O/0 (the labels are
not consistent about them); in-cands = the label is among the best plate's
candidates (or any plate's, O=0 tolerant); box = some returned plate's box has
IoU >= 0.5 with the label box; false/img = plates returned that are not the
labelled one, per photo; s/img median and mean wall time of `recognize`, and its
CPU time (this process only: run on one core, `taskset -c 0`, with one thread).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from PIL import Image

from imagescan.analyzers import load_face_recognizer, load_plate_recognizer
from imagescan.platetext import normalize_plate

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "plates"
SETS = ("us", "eu", "br")
HOLDOUT_BYTE_BELOW = 64
SPLIT_SALTS = {"fixed": "", "fresh": "fresh:"}


@dataclass(frozen=True)
class Sample:
    image: Path
    box: tuple[int, int, int, int]
    plate: str


@dataclass
class Tally:
    n: int = 0
    top1: int = 0
    top1_o0: int = 0
    in_candidates: int = 0
    box_hits: int = 0
    false_plates: int = 0
    seconds: list[float] = field(default_factory=list)
    both_seconds: list[float] = field(default_factory=list)  # plates + faces (--with-faces)
    # CPU seconds of this process: on a shared machine wall time measures the neighbours too
    cpu_seconds: list[float] = field(default_factory=list)
    both_cpu_seconds: list[float] = field(default_factory=list)


def split_of(file_name: str, rule: str = "fixed") -> str:
    digest = hashlib.sha1((SPLIT_SALTS[rule] + file_name).encode()).digest()
    return "holdout" if digest[0] < HOLDOUT_BYTE_BELOW else "tune"


def load_samples(folder: Path) -> list[Sample]:
    samples = []
    for label in sorted(folder.glob("*.txt")):
        for line in label.read_text().splitlines():
            if not line.strip():
                continue
            name, x, y, w, h, plate = line.split("\t")[:6]
            samples.append(Sample(folder / name, (int(x), int(y), int(w), int(h)), normalize_plate(plate)))
    return samples


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def same_o0(a: str, b: str) -> bool:
    return a.replace("O", "0") == b.replace("O", "0")


def score(sample: Sample, reads: list, seconds: float, tally: Tally) -> dict:
    tally.n += 1
    tally.seconds.append(seconds)
    best = reads[0].plate if reads else ""
    tally.top1 += best == sample.plate
    tally.top1_o0 += same_o0(best, sample.plate)
    candidates = [c.plate for r in reads for c in r.candidates]
    tally.in_candidates += any(same_o0(c, sample.plate) for c in candidates)
    boxes = [(r.box.x, r.box.y, r.box.w, r.box.h) for r in reads]
    best_iou = max((iou(b, sample.box) for b in boxes), default=0.0)
    tally.box_hits += best_iou >= 0.5
    labelled = [r for r in reads if iou((r.box.x, r.box.y, r.box.w, r.box.h), sample.box) >= 0.3]
    tally.false_plates += len(reads) - min(1, len(labelled))
    return {
        "image": sample.image.name,
        "truth": sample.plate,
        "best": best,
        "iou": round(best_iou, 3),
        "seconds": round(seconds, 3),
        "reads": [r.to_dict() for r in reads],
    }


def print_table(title: str, tally: Tally) -> None:
    if not tally.n:
        print(f"{title}: no photos")
        return
    pct = lambda k: f"{100 * k / tally.n:5.1f}%"
    print(f"\n{title}")
    print("   n  top-1  top-1 O=0  in-cands   box  false/img  s/img med  s/img mean")
    print(
        f"{tally.n:4d} {pct(tally.top1)}   {pct(tally.top1_o0)}    {pct(tally.in_candidates)} {pct(tally.box_hits)}"
        f"     {tally.false_plates / tally.n:5.2f}      {statistics.median(tally.seconds):6.3f}      "
        f"{statistics.fmean(tally.seconds):6.3f}"
    )
    print(f"plates CPU s/img: median {statistics.median(tally.cpu_seconds):.3f} mean {statistics.fmean(tally.cpu_seconds):.3f}")
    if tally.both_seconds:
        print(
            f"plates + faces s/img: median {statistics.median(tally.both_seconds):.3f} "
            f"mean {statistics.fmean(tally.both_seconds):.3f}; CPU median "
            f"{statistics.median(tally.both_cpu_seconds):.3f} mean {statistics.fmean(tally.both_cpu_seconds):.3f}"
        )


def parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        options[key] = value
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sets", nargs="*", default=list(SETS), help="set folders to run (default: us eu br)")
    parser.add_argument(
        "--split",
        choices=("tune", "holdout", "all"),
        default="all",
        help="all prints tune and holdout tables separately",
    )
    parser.add_argument("--rule", choices=tuple(SPLIT_SALTS), default="fixed", help="split rule")
    parser.add_argument("--ranker", type=Path, help="candidate ranker weights (.npz from the training script)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many photos per set and split")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding the set folders")
    parser.add_argument("--engine", default="rapidocr")
    parser.add_argument("-o", "--option", action="append", default=[], help="recognizer option key=value")
    parser.add_argument(
        "--with-faces", action="store_true", help="also time face detection (default dlib engine) per photo"
    )
    parser.add_argument("--dump", type=Path, help="write every result as JSON lines here")
    args = parser.parse_args(argv)

    if not args.data.is_dir():
        print(f"no data folder at {args.data}", file=sys.stderr)
        return 2
    options = parse_options(args.option)
    if args.ranker:
        from imagescan.analyzers.plates.ranking import Ranker

        options["ranker"] = Ranker.load(args.ranker)
    recognizer = load_plate_recognizer(args.engine, **options)
    faces = load_face_recognizer("dlib") if args.with_faces else None
    splits = ("tune", "holdout") if args.split == "all" else (args.split,)
    dump = args.dump.open("w") if args.dump else None
    for set_name in args.sets:
        samples = load_samples(args.data / set_name)
        for split in splits:
            chosen = [s for s in samples if split_of(s.image.name, args.rule) == split]
            if args.limit:
                chosen = chosen[: args.limit]
            tally = Tally()
            for sample in chosen:
                with Image.open(sample.image) as opened:
                    image = opened.convert("RGB")
                started, cpu_started = time.perf_counter(), time.process_time()
                reads = recognizer.recognize(image)
                plate_seconds = time.perf_counter() - started
                tally.cpu_seconds.append(time.process_time() - cpu_started)
                if faces:
                    faces.detect(image)
                    tally.both_seconds.append(time.perf_counter() - started)
                    tally.both_cpu_seconds.append(time.process_time() - cpu_started)
                row = score(sample, reads, plate_seconds, tally)
                if dump:
                    dump.write(json.dumps({"set": set_name, "split": split, **row}) + "\n")
            print_table(f"{set_name} / {split} ({args.rule} split)", tally)
    if dump:
        dump.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
