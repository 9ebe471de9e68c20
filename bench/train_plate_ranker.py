"""Train the plate candidate ranker (logistic regression, numpy) on a tune split.

    .venv/bin/python bench/train_plate_ranker.py                 # fixed rule: writes ranker_weights.py
    .venv/bin/python bench/train_plate_ranker.py --rule fresh --out /tmp/fresh.json

Every photo of the sets is run once through the engine (--collect) and the
features of every candidate of every text line it read are kept (in --cache: the
OCR is the slow part). A candidate is
positive when it equals the labelled plate. The regression is fitted on the tune
photos of the chosen split rule (bench/plates.py), then its output is calibrated
(pool-adjacent-violators over the lines' best candidates: the probability that a
line's best reading is the plate) on the same photos. The script prints top-1 of
the hand-set score and of the model on the tune and held-out photos (best
candidate over all lines of a photo), and the held-out reliability table.

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
from plates import DEFAULT_DATA, SETS, SPLIT_SALTS, load_samples, split_of

from imagescan.analyzers import load_plate_recognizer
from imagescan.analyzers.plates.ranking import FEATURES, Ranker

WEIGHTS_FILE = REPO_ROOT / "imagescan" / "analyzers" / "plates" / "ranker_weights.py"
L2 = 1.0  # ridge penalty on the standardised weights
CALIBRATION_BINS = 12
CHOICE_STEPS, CHOICE_RATE = 400, 0.5


def collect(data: Path, sets: list[str], cache: Path, part: tuple[int, int], others: list[Path]) -> list[dict]:
    """Per photo: set, name, truth, and every line the engine read (texts, feature rows).

    The engine runs as configured (its passes decided by the ranker it ships with);
    every photo is added to the cache as soon as it is read, so a run can resume.
    """
    photos = pickle.loads(cache.read_bytes()) if cache.is_file() else []
    done = {(p["set"], p["name"]) for c in [cache, *others] if c.is_file() for p in pickle.loads(c.read_bytes())}
    engine = load_plate_recognizer("rapidocr")
    for set_name in sets:
        for index, sample in enumerate(load_samples(data / set_name)):
            if (set_name, sample.image.name) in done or index % part[1] != part[0]:
                continue
            lines: list = []

            def observe(quad, texts, rows, lines=lines):
                if texts:
                    lines.append((texts, rows))

            engine.observer = observe
            with Image.open(sample.image) as opened:
                engine.recognize(opened.convert("RGB"))
            photos.append({"set": set_name, "name": sample.image.name, "truth": sample.plate, "lines": lines})
            cache.write_bytes(pickle.dumps(photos))
            print(f"  {set_name}/{sample.image.name}: {len(lines)} lines", file=sys.stderr)
    return photos


def stacked(photos: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for photo in photos:
        for texts, line_rows in photo["lines"]:
            rows.append(line_rows)
            labels.extend(text == photo["truth"] for text in texts)
    return np.vstack(rows), np.asarray(labels, dtype=np.float64)


def fit_logistic(rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Ridge logistic regression by Newton's method on standardised features."""
    mean, scale = rows.mean(axis=0), rows.std(axis=0)
    scale[scale < 1e-9] = 1.0
    x = np.hstack([(rows - mean) / scale, np.ones((len(rows), 1))])
    weights = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], L2)
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


def isotonic(scores: np.ndarray, right: np.ndarray) -> tuple[list[float], list[float]]:
    """Pool-adjacent-violators on quantile bins: a monotone score -> precision table."""
    order = np.argsort(scores)
    bins = [b for b in np.array_split(order, CALIBRATION_BINS) if len(b)]
    blocks = [[float(scores[b].mean()), float(right[b].sum()), len(b)] for b in bins]
    merged: list[list[float]] = []
    for block in blocks:
        merged.append(block)
        while len(merged) > 1 and merged[-2][1] / merged[-2][2] > merged[-1][1] / merged[-1][2]:
            last = merged.pop()
            head = merged[-1]
            head[0] = (head[0] * head[2] + last[0] * last[2]) / (head[2] + last[2])
            head[1] += last[1]
            head[2] += last[2]
    xs = [0.0] + [round(b[0], 6) for b in merged] + [1.0]
    ys = [0.0] + [round(b[1] / b[2], 4) for b in merged]
    ys.append(ys[-1])
    return xs, ys


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


def write_weights(ranker: Ranker, rule: str) -> None:
    fields = ranker.to_dict()
    lines = [
        '"""Weights of the plate candidate ranker (ranking.Ranker).',
        "",
        f"Written by bench/train_plate_ranker.py (logistic regression, L2 {L2}) on the tune",
        f"photos of the {rule!r} split of ../shared/data/plates. Do not edit by hand.",
        '"""',
        "",
        f"FEATURES = {tuple(fields['features'])!r}",
    ]
    for key in ("mean", "scale", "weights", "bias", "calibration_in", "calibration_out"):
        value = fields[key]
        value = [round(v, 6) for v in value] if isinstance(value, list) else round(value, 6)
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
    parser.add_argument("--model", choices=("logistic", "choice"), default="logistic")
    parser.add_argument("--out", type=Path, help="write the ranker here as JSON instead of ranker_weights.py")
    args = parser.parse_args(argv)

    if args.collect:
        collect(args.data, args.collect, args.cache, tuple(map(int, args.part.split("/"))), args.caches or [])
        return 0
    photos = [p for cache in args.caches or [args.cache] for p in pickle.loads(cache.read_bytes())]
    tune = [p for p in photos if split_of(p["name"], args.rule) == "tune"]
    holdout = [p for p in photos if split_of(p["name"], args.rule) == "holdout"]
    mean, scale, weights, bias = fit_logistic(*stacked(tune))
    if args.model == "choice":
        # Only the ranking of a photo's candidates is learnt; the logistic fit's bias and
        # the calibration below turn the scores into probabilities.
        weights = fit_choice(tune, mean, scale)
        rows, labels = stacked(tune)
        logits = ((rows - mean) / scale) @ weights
        bias = float(np.log(labels.mean() / (1 - labels.mean())) - np.median(logits))
    ranker = Ranker(mean, scale, weights, bias, [0.0, 1.0], [0.0, 1.0])
    ranker = Ranker(mean, scale, weights, bias, *isotonic(*line_bests(tune, ranker, calibrated=False)))
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
        write_weights(ranker, args.rule)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
