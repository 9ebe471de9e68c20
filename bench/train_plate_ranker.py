"""Train the plate candidate ranker (logistic regression, numpy) on a tune split.

    .venv/bin/python bench/train_plate_ranker.py                 # fixed rule: writes ranker_weights.py
    .venv/bin/python bench/train_plate_ranker.py --rule fresh --out /tmp/fresh.json

Every photo of the sets is run once through the engine (--collect) and what the
recogniser saw of every text line it read (its per-frame probabilities for each
crop, and the line's geometry) is kept in --cache: the OCR is the slow part, and
the candidates and their features are derived from the cache each run, so changes
to candidate generation are trained and judged without new OCR. A candidate is
positive when it equals the labelled plate. The regression is fitted on the tune
photos of the chosen split rule (bench/plates.py), then its output is calibrated
(pool-adjacent-violators over the lines' best candidates, smoothed by a logistic
curve on its log odds as a prior, see plate_calibration.py: the probability that
a line's best reading is the plate) on the same photos. The script prints top-1 of the hand-set score and of the model on the tune and
held-out photos (best candidate over all lines of a photo), and the held-out
reliability table.

Training data: the labelled photos of ../shared/data/plates (openalpr/benchmarks,
AGPL-3.0 data; see that folder's README); only the weights are shipped.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from PIL import Image
from plate_calibration import calibration
from plates import DEFAULT_DATA, SETS, SPLIT_SALTS, load_samples, split_of

from imagescan.analyzers import load_plate_recognizer
from imagescan.analyzers.plates.ranking import (
    FEATURES,
    TEXT_FEATURES,
    Ranker,
    line_features,
    reading_candidates,
)

WEIGHTS_FILE = REPO_ROOT / "imagescan" / "analyzers" / "plates" / "ranker_weights.py"
L2 = 1.0  # ridge penalty on the standardised weights
# Prior on the effect of the text's own shape (all letters, all digits, short, ...),
# in log odds per unit of the feature: a shape the tune photos rarely hold (a two-
# character or all-digit plate) cannot rule a reading out on a handful of examples.
SHAPE_PRIOR_SD = 1.0
CHOICE_STEPS, CHOICE_RATE = 400, 0.5


def collect(data: Path, sets: list[str], cache: Path, part: tuple[int, int], others: list[Path]) -> list[dict]:
    """Per photo: set, name, truth, and every line the engine read, as the recogniser's
    folded per-frame probabilities of each crop and the line's geometry.

    The candidates and their features are derived from these at training time
    (`derived`), so a change to candidate generation or features needs no new OCR.
    The engine runs as configured (its passes decided by the ranker it ships with);
    every photo is added to the cache as soon as it is read, so a run can resume.
    """
    from imagescan.analyzers.plates import rapid

    photos = load_cache(cache)
    done = {(p["set"], p["name"]) for c in [cache, *others] for p in load_cache(c)}
    engine = load_plate_recognizer("rapidocr")
    pending: list = []
    lines: list = []
    reading_candidates, line_features = rapid.reading_candidates, rapid.line_features

    def record_reading(frame_probs, region):
        pending.append(np.array(frame_probs, dtype=np.float32))
        return reading_candidates(frame_probs, region)

    def record_line(readings, line):
        lines.append((list(pending), line))
        pending.clear()
        return line_features(readings, line)

    rapid.reading_candidates, rapid.line_features = record_reading, record_line
    try:
        for set_name in sets:
            for index, sample in enumerate(load_samples(data / set_name)):
                if (set_name, sample.image.name) in done or index % part[1] != part[0]:
                    continue
                lines.clear()
                with Image.open(sample.image) as opened:
                    engine.recognize(opened.convert("RGB"))
                photo = {"set": set_name, "name": sample.image.name, "truth": sample.plate, "raw": list(lines)}
                photos.append(photo)
                with cache.open("ab") as stream:
                    pickle.dump(photo, stream)
                print(f"  {set_name}/{sample.image.name}: {len(lines)} lines", file=sys.stderr)
    finally:
        rapid.reading_candidates, rapid.line_features = reading_candidates, line_features
    return photos


def load_cache(cache: Path) -> list[dict]:
    """The photos pickled one after another into `cache` (none when it does not exist)."""
    photos = []
    if cache.is_file():
        with cache.open("rb") as stream:
            while True:
                try:
                    photos.append(pickle.load(stream))
                except EOFError:
                    return photos
    return photos


def derived(photos: list[dict], region: str = "auto") -> list[dict]:
    """The photos with each line's candidates and feature rows ("lines") computed by the
    current candidate generation from the cached recogniser output."""
    for photo in photos:
        lines = []
        for readings, line in photo["raw"]:
            found = [r for r in (reading_candidates(f, region) for f in readings) if r]
            texts, rows = line_features(found, line)
            if texts:
                lines.append((texts, rows))
        photo["lines"] = lines
    return photos


def stacked(photos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for photo in photos:
        for texts, line_rows in photo["lines"]:
            rows.append(line_rows)
            labels.extend(text == photo["truth"] for text in texts)
    return np.vstack(rows), np.asarray(labels, dtype=np.float64)


def fit_logistic(
    rows: np.ndarray, labels: np.ndarray, shape_sd: float = SHAPE_PRIOR_SD
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Ridge logistic regression by Newton's method on standardised features.

    The text-shape features' weights are shrunk in their own units (a Gaussian prior
    of sd `shape_sd` on the log odds per unit), not in standard deviations: a shape
    seen in one candidate of a hundred has a tiny deviation, and a penalty in those
    units would let it take any weight the few examples suggest.
    """
    mean, scale = rows.mean(axis=0), rows.std(axis=0)
    scale[scale < 1e-9] = 1.0
    x = np.hstack([(rows - mean) / scale, np.ones((len(rows), 1))])
    weights = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], L2)
    if shape_sd > 0:
        for name in TEXT_FEATURES:
            j = FEATURES.index(name)
            penalty[j] = max(L2, 1.0 / (shape_sd * scale[j]) ** 2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ weights, -30, 30)))
        gradient = x.T @ (p - labels) + penalty * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, weights[:-1], float(weights[-1])


def fit_choice(photos: list[dict], mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Conditional logit: weights that make the labelled plate the photo's best candidate.

    Per photo, a softmax over all its candidates (every line); the loss is minus the log
    of the probability given to the candidates equal to the label (photos whose label is
    no candidate teach nothing and are left out). Ridge penalty L2; plain gradient descent
    with momentum (the loss is convex).
    """
    groups = []
    for photo in photos:
        rows = [r for _, r in photo["lines"]]
        if not rows:
            continue
        labels = np.concatenate([[t == photo["truth"] for t in texts] for texts, _ in photo["lines"]])
        if labels.any():
            groups.append(((np.vstack(rows) - mean) / scale, labels))
    weights = np.zeros(len(mean))
    velocity = np.zeros_like(weights)
    for _ in range(CHOICE_STEPS):
        gradient = L2 * weights
        for x, labels in groups:
            logits = x @ weights
            p = np.exp(logits - logits.max())
            p /= p.sum()
            q = p * labels / (p * labels).sum()
            gradient += x.T @ (p - q)
        velocity = 0.9 * velocity - CHOICE_RATE * gradient / len(groups)
        weights += velocity
    return weights


def line_bests(photos: list[dict], ranker: Ranker, calibrated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each line's best candidate: its score and whether it is the plate."""
    scores, right = [], []
    for photo in photos:
        for texts, rows in photo["lines"]:
            values = ranker.confidence(rows) if calibrated else ranker.raw(rows)
            best = int(np.argmax(values))
            scores.append(values[best])
            right.append(texts[best] == photo["truth"])
    return np.asarray(scores), np.asarray(right, dtype=np.float64)


def top1(photos: list[dict], ranker: Ranker, use_raw_vote: bool = False) -> float:
    """Share of photos whose best candidate over all lines is the plate."""
    hits = 0
    for photo in photos:
        best_text, best_value = "", -np.inf
        for texts, rows in photo["lines"]:
            values = rows[:, FEATURES.index("log_vote")] if use_raw_vote else ranker.raw(rows)
            i = int(np.argmax(values))
            if values[i] > best_value:
                best_text, best_value = texts[i], values[i]
        hits += best_text == photo["truth"]
    return hits / max(1, len(photos))


def reliability(photos: list[dict], ranker: Ranker) -> None:
    scores, right = line_bests(photos, ranker, calibrated=True)
    print("  confidence   lines  right")
    for low, high in ((0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 1.01)):
        chosen = (scores >= low) & (scores < high)
        if chosen.any():
            print(f"  {low:.1f}-{min(high, 1):.1f}     {chosen.sum():5d}  {right[chosen].mean():.2f}")


def write_weights(ranker: Ranker, rule: str, shape_sd: float) -> None:
    fields = ranker.to_dict()
    lines = [
        '"""Weights of the plate candidate ranker (ranking.Ranker).',
        "",
        f"Written by bench/train_plate_ranker.py (logistic regression, L2 {L2}, text-shape",
        f"prior sd {shape_sd}; calibration: bins with a smooth prior) on the tune photos of the",
        f"{rule!r} split of ../shared/data/plates. Do not edit by hand.",
        '"""',
        "",
        f"FEATURES = {tuple(fields['features'])!r}",
    ]
    for key in ("mean", "scale", "weights", "bias", "calibration_in", "calibration_out"):
        value = fields[key]
        value = [float(f"{v:.6g}") for v in value] if isinstance(value, list) else float(f"{value:.6g}")
        lines.append(f"{key.upper()} = {value!r}")
    WEIGHTS_FILE.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rule", choices=tuple(SPLIT_SALTS), default="fixed")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/plate-ranker-features.pkl"))
    parser.add_argument("--collect", nargs="*", help="only read these sets' photos into --cache")
    parser.add_argument("--part", default="0/1", help="k/n: collect only every n-th photo from the k-th")
    parser.add_argument("--caches", type=Path, nargs="*", help="train on these caches (default: --cache)")
    parser.add_argument("--shape-sd", type=float, default=SHAPE_PRIOR_SD, help="0: shapes shrunk like the rest")
    parser.add_argument("--model", choices=("logistic", "choice"), default="logistic")
    parser.add_argument("--out", type=Path, help="write the ranker here as JSON instead of ranker_weights.py")
    args = parser.parse_args(argv)

    if args.collect:
        collect(args.data, args.collect, args.cache, tuple(map(int, args.part.split("/"))), args.caches or [])
        return 0
    photos = derived([p for cache in args.caches or [args.cache] for p in load_cache(cache)])
    tune = [p for p in photos if split_of(p["name"], args.rule) == "tune"]
    holdout = [p for p in photos if split_of(p["name"], args.rule) == "holdout"]
    mean, scale, weights, bias = fit_logistic(*stacked(tune), args.shape_sd)
    if args.model == "choice":
        # Only the ranking of a photo's candidates is learnt; the logistic fit's bias and
        # the calibration below turn the scores into probabilities.
        weights = fit_choice(tune, mean, scale)
        rows, labels = stacked(tune)
        logits = ((rows - mean) / scale) @ weights
        bias = float(np.log(labels.mean() / (1 - labels.mean())) - np.median(logits))
    ranker = Ranker(mean, scale, weights, bias, [0.0, 1.0], [0.0, 1.0])
    ranker = Ranker(mean, scale, weights, bias, *calibration(*line_bests(tune, ranker, calibrated=False)))
    print(f"{args.rule} split: {len(tune)} tune photos, {len(holdout)} held out")
    print("weights (standardised):")
    for name, weight in sorted(zip(FEATURES, weights), key=lambda item: -abs(item[1])):
        print(f"  {name:18s} {weight:+.3f}")
    for set_name in (*SETS, "all"):
        parts = {
            name: [p for p in part if set_name in ("all", p["set"])]
            for name, part in (("tune", tune), ("holdout", holdout))
        }
        print(
            f"{set_name:4s} top-1 over all passes  hand-set: tune {top1(parts['tune'], ranker, True):.3f} "
            f"holdout {top1(parts['holdout'], ranker, True):.3f}   model: tune {top1(parts['tune'], ranker):.3f} "
            f"holdout {top1(parts['holdout'], ranker):.3f}"
        )
    print("held-out reliability (lines' best candidates):")
    reliability(holdout, ranker)
    if args.out:
        import json

        args.out.write_text(json.dumps(ranker.to_dict()))
    else:
        write_weights(ranker, args.rule, args.shape_sd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
