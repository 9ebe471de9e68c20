"""Calibration of the plate ranker's output (bench/train_plate_ranker.py).

The ranker's logistic regression is fitted on every candidate; what a caller needs
is the probability that a line's best candidate is the plate. This maps the
regression's output to that probability, fitted on the lines' best candidates of
the tune photos, as a monotone table (`ranking.Ranker` interpolates in it).
"""

from __future__ import annotations

import numpy as np

# Pool-adjacent-violators over quantile bins of the lines' best candidates, each bin
# holding PRIOR_LINES pseudo-lines at the rate of a logistic curve on the regression's
# log odds (the prior; also the table beyond the bins, at CALIBRATION_LOGITS).
CALIBRATION_BINS = 12
PRIOR_LINES = 5.0
CALIBRATION_LOGITS = np.linspace(-16.0, 16.0, 65)


def platt(scores: np.ndarray, right: np.ndarray) -> tuple[list[float], list[float]]:
    """A logistic curve from the regression's log odds to the share of right lines
    (Platt scaling, two parameters by Newton's method), written as a table.

    Monotone and never exactly 0 or 1: a rare kind of reading gets a small
    probability rather than the 0 of an empty bin.
    """
    t = np.log(np.clip(scores, 1e-12, 1.0) / np.clip(1.0 - scores, 1e-12, 1.0))
    x = np.stack([t, np.ones_like(t)], axis=1)

    def loss(ab: np.ndarray) -> float:
        z = x @ ab
        return float(np.sum(np.logaddexp(0.0, z) - right * z))

    share = np.clip(right.mean(), 1e-3, 1 - 1e-3)
    ab = np.array([0.0, np.log(share / (1 - share))])  # every line at the mean
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ ab, -30, 30)))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, x.T @ (p - right))
        while loss(ab - step) > loss(ab) and np.abs(step).max() > 1e-12:
            step /= 2  # damped Newton: never a step that makes the fit worse
        ab -= step
        if np.abs(step).max() < 1e-10:
            break
    xs = 1.0 / (1.0 + np.exp(-CALIBRATION_LOGITS))
    ys = 1.0 / (1.0 + np.exp(-np.clip(ab[0] * CALIBRATION_LOGITS + ab[1], -50, 50)))
    return [0.0, *np.round(xs, 9).tolist(), 1.0], [0.0, *np.round(ys, 6).tolist(), float(np.round(ys[-1], 6))]


def calibration(scores: np.ndarray, right: np.ndarray) -> tuple[list[float], list[float]]:
    """A monotone score -> share-right table: pool-adjacent-violators over quantile bins,
    with a prior in each bin (PRIOR_LINES pseudo-lines at the Platt curve's rate).

    Without the prior an empty bin (no right line among its few) says 0, and a rare kind
    of reading (a two-character plate) can never be reported; with it such a bin says
    what the smooth curve says, and well-filled bins say what their lines say.
    """
    curve_in, curve_out = platt(scores, right)
    order = np.argsort(scores)
    blocks = []
    for members in (b for b in np.array_split(order, CALIBRATION_BINS) if len(b)):
        centre = float(scores[members].mean())
        prior = float(np.interp(centre, curve_in, curve_out))
        blocks.append([centre, float(right[members].sum()) + PRIOR_LINES * prior, len(members) + PRIOR_LINES])
    merged: list[list[float]] = []
    for block in blocks:
        merged.append(block)
        while len(merged) > 1 and merged[-2][1] / merged[-2][2] > merged[-1][1] / merged[-1][2]:
            last = merged.pop()
            head = merged[-1]
            head[0] = (head[0] * head[2] + last[0] * last[2]) / (head[2] + last[2])
            head[1] += last[1]
            head[2] += last[2]
    points = [(x, y) for x, y in zip(curve_in, curve_out) if x < merged[0][0]]
    points += [(block[0], block[1] / block[2]) for block in merged]
    points += [(x, y) for x, y in zip(curve_in, curve_out) if x > merged[-1][0]]
    ys = np.maximum.accumulate([y for _, y in points])  # the curve's tails join monotonically
    return [round(x, 9) for x, _ in points], [round(float(y), 6) for y in ys]
