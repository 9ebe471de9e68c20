"""CPU time per photo of the worker's analysis (plates, faces, both), optionally against another revision.

    taskset -c 0 .venv/bin/python bench/analysis_cpu.py us
    taskset -c 0 .venv/bin/python bench/analysis_cpu.py us --every 3 --baseline HEAD~1

Each photo of the set folder(s) under ../shared/data/plates is decoded once as the worker
does (imagescan.imaging.decode), then the default plate engine (`recognize`) and face engine
(`detect`, at the worker's default FACE_MAX_SIDE) are timed with time.process_time: the CPU
time of this process only, which a shared machine inflates much less than wall time. Engines
are loaded once, before the first photo; onnxruntime uses one thread.

--baseline REV also loads the engines of that git revision (its `imagescan` package, taken
with `git archive` into a temporary folder and imported under another name) and times both
on every photo, alternating which goes first, so that whatever else the machine runs hits
both alike. It prints both medians and how many photos' plates (best plate, box) or faces
(count, boxes) differ between the two.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from plates import parse_options  # the plate bench's -o KEY=VALUE parsing

from imagescan import imaging

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "plates"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def baseline_package(revision: str, folder: Path) -> str:
    """The `imagescan` package of `revision`, importable as `imagescan_baseline`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", revision, "imagescan"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / "imagescan_baseline"
    (folder / "imagescan").rename(package)
    for source in package.rglob("*.py"):
        text = source.read_text()
        text = re.sub(r"\bimagescan\.", "imagescan_baseline.", text)
        text = re.sub(r"\b(from|import) imagescan\b", r"\1 imagescan_baseline", text)
        source.write_text(text)
    sys.path.insert(0, str(folder))
    return "imagescan_baseline"


def box_tuple(box) -> tuple[int, int, int, int]:
    return box.x, box.y, box.w, box.h


class Engines:
    def __init__(self, package: str, plate_options: dict, face_options: dict) -> None:
        analyzers = importlib.import_module(f"{package}.analyzers")
        self.plates = analyzers.load_plate_recognizer("rapidocr", **plate_options)
        self.faces = analyzers.load_face_recognizer("dlib", **{"max_side": 1280, **face_options})
        self.plate_cpu: list[float] = []
        self.face_cpu: list[float] = []

    def run(self, image):
        started = time.process_time()
        plates = self.plates.recognize(image)
        middle = time.process_time()
        faces = self.faces.detect(image)
        self.plate_cpu.append(middle - started)
        self.face_cpu.append(time.process_time() - middle)
        best = (plates[0].plate, box_tuple(plates[0].box)) if plates else None
        return best, [box_tuple(face.box) for face in faces]

    def summary(self, title: str) -> str:
        both = [p + f for p, f in zip(self.plate_cpu, self.face_cpu)]
        median = statistics.median
        return (
            f"{title}: CPU s/photo median plates {median(self.plate_cpu):.3f}, faces "
            f"{median(self.face_cpu):.3f}, plates + faces {median(both):.3f} "
            f"(mean {statistics.fmean(both):.3f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="*", default=["us"], help="set folders (default: us)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--every", type=int, default=1, help="every n-th photo only")
    parser.add_argument("--baseline", help="git revision to time against, alternately")
    parser.add_argument("-o", "--option", action="append", default=[], help="plate engine option key=value")
    parser.add_argument("-f", "--face-option", action="append", default=[], help="face engine option key=value")
    args = parser.parse_args(argv)

    photos = sorted(
        path for name in args.sets for path in (args.data / name).iterdir() if path.suffix.lower() in PHOTO_SUFFIXES
    )[:: max(1, args.every)]
    if not photos:
        print("no photos", file=sys.stderr)
        return 2
    current = Engines("imagescan", parse_options(args.option), parse_options(args.face_option))
    with tempfile.TemporaryDirectory() as folder:
        baseline = (
            Engines(baseline_package(args.baseline, Path(folder)), {}, {}) if args.baseline else None
        )
        plates_differ = faces_differ = 0
        for index, path in enumerate(photos):
            image = imaging.decode(path.read_bytes(), 10**9).pixels
            if baseline is None:
                current.run(image)
                continue
            order = (current, baseline) if index % 2 == 0 else (baseline, current)
            results = {id(engines): engines.run(image) for engines in order}
            (new_plate, new_faces), (old_plate, old_faces) = results[id(current)], results[id(baseline)]
            plates_differ += new_plate != old_plate
            faces_differ += new_faces != old_faces
    print(f"{len(photos)} photos of {', '.join(args.sets)}, engines loaded once, time.process_time")
    print(current.summary("this tree"))
    if baseline is not None:
        print(baseline.summary(f"baseline {args.baseline}"))
        print(f"photos whose best plate differs: {plates_differ}; whose faces differ: {faces_differ}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
