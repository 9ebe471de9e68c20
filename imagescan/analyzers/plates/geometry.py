"""Geometry of text lines and plates: which detected lines are plate-shaped, how a
line is cut out of the image, where the plate around it is, and which windows
of the image the sharper detector pass looks at.

A text line is a quad: four float32 corners (top-left, top-right, bottom-right,
bottom-left) in image pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from imagescan.analyzers import Box

# Margin around a text line when cutting it out, in line heights: the detector's
# box sometimes clips the first or last character.
# Each extra reading of a line uses the next margin along the line.
CROP_MARGINS = (0.15, 0.35, 0.05)
CROP_ACROSS = 0.1
# How much wider than its text line a plate is, in text heights (fitted on the tune split).
PLATE_ALONG, PLATE_ACROSS = 0.0, 0.05
# The aspect ratio (width / height) of a typical plate's text line.
TYPICAL_LINE_ASPECT = 3.5


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    width = max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]))
    height = max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))
    return float(width), float(height)


def plate_shaped_line(quad: np.ndarray) -> bool:
    width, height = quad_size(quad)
    return height >= 7 and 0.8 <= width / max(height, 1.0) <= 14


def line_shape_penalty(quad: np.ndarray) -> float:
    """How far the line's aspect ratio is from a plate's (0: typical)."""
    width, height = quad_size(quad)
    return abs(math.log(width / max(height, 1.0) / TYPICAL_LINE_ASPECT))


def joined_neighbours(quads: list[np.ndarray]) -> list[np.ndarray]:
    """Pairs of lines side by side with the same height, joined: a plate such as
    `789 SJL` or `VW 4X4-WP` is sometimes detected as two lines."""
    joined = []
    boxes = [(q.min(axis=0), q.max(axis=0)) for q in quads]
    for i, (low_a, high_a) in enumerate(boxes):
        for j, (low_b, high_b) in enumerate(boxes):
            if i == j or low_b[0] < low_a[0]:
                continue
            height_a, height_b = high_a[1] - low_a[1], high_b[1] - low_b[1]
            height = max(height_a, height_b)
            same_height = min(height_a, height_b) > 0.75 * height
            same_row = abs((low_a[1] + high_a[1]) - (low_b[1] + high_b[1])) / 2 < 0.3 * height
            gap = low_b[0] - high_a[0]
            if same_height and same_row and -0.2 * height < gap < 1.2 * height:
                low, high = np.minimum(low_a, low_b), np.maximum(high_a, high_b)
                joined.append(np.array([low, [high[0], low[1]], high, [low[0], high[1]]], dtype=np.float32))
    return joined


def expanded(quad: np.ndarray, along: float, across: float) -> np.ndarray:
    """The quad grown by `along` x its height at both ends and `across` x its height above and below."""
    quad = quad.astype(np.float32)
    top_left, top_right, bottom_right, bottom_left = quad
    right = (top_right - top_left + bottom_right - bottom_left) / 2
    down = (bottom_left - top_left + bottom_right - top_right) / 2
    height = np.linalg.norm(down)
    right_unit = right / max(np.linalg.norm(right), 1e-6)
    down_unit = down / max(height, 1e-6)
    dx, dy = right_unit * along * height, down_unit * across * height
    return np.array(
        [top_left - dx - dy, top_right + dx - dy, bottom_right + dx + dy, bottom_left - dx + dy],
        dtype=np.float32,
    )


def crop_line(bgr: np.ndarray, quad: np.ndarray, along: float) -> np.ndarray:
    """The text line straightened out of the full-resolution image, with a margin.

    A perspective warp of the grown quad onto an upright rectangle (what PP-OCR's
    own pipeline does; written here so no private rapidocr helper is needed).
    """
    corners = expanded(quad, along, CROP_ACROSS)
    width, height = (max(1, int(side)) for side in quad_size(corners))
    upright = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(corners, upright)
    crop = cv2.warpPerspective(
        bgr, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    return np.ascontiguousarray(crop)


def plate_box(quad: np.ndarray, shape: tuple[int, ...]) -> Box:
    """Axis-aligned box around the plate: the text line widened to the plate's border."""
    grown = expanded(quad, PLATE_ALONG, PLATE_ACROSS)
    height, width = shape[:2]
    x0, y0 = (float(v) for v in np.clip(grown.min(axis=0), 0, [width - 1, height - 1]))
    x1, y1 = (float(v) for v in np.clip(grown.max(axis=0), 0, [width, height]))
    return Box(round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)))


def overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy / max(1, min(a.w * a.h, b.w * b.h))


# The sharper detector pass looks at windows around faint text in the quick pass's
# probability map: map values above WINDOW_TEXT_PROB, each grown by WINDOW_MARGIN
# times its height (at least WINDOW_MIN_MARGIN pixels) and to at least
# WINDOW_MIN_SIDE pixels (the detector misses lines in windows without context).
# When the windows cover more than WINDOW_MAX_SHARE of the image, the whole image
# is cheaper to scan. Fitted on the tune split of bench/plates.py.
WINDOW_TEXT_PROB = 0.03
WINDOW_MARGIN = 2.0
WINDOW_MIN_MARGIN = 48
WINDOW_MIN_SIDE = 256
WINDOW_MAX_SHARE = 0.5


def text_windows(
    text_map: np.ndarray | None, shape: tuple[int, ...]
) -> list[tuple[int, int, int, int]] | None:
    """Windows (x, y, w, h in image pixels) around faint text; None: scan the whole image."""
    if text_map is None:
        return None
    height, width = shape[:2]
    to_x, to_y = width / text_map.shape[1], height / text_map.shape[0]
    mask = (text_map > WINDOW_TEXT_PROB).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    rects = []
    for x, y, w, h, _area in stats[1:count]:
        x0, x1, y0, y1 = x * to_x, (x + w) * to_x, y * to_y, (y + h) * to_y
        margin = max(WINDOW_MIN_MARGIN, WINDOW_MARGIN * (y1 - y0))
        grow_x = max(margin, (WINDOW_MIN_SIDE - (x1 - x0)) / 2)
        grow_y = max(margin, (WINDOW_MIN_SIDE - (y1 - y0)) / 2)
        rects.append(
            [max(0, x0 - grow_x), max(0, y0 - grow_y), min(width, x1 + grow_x), min(height, y1 + grow_y)]
        )
    rects = merged(rects)
    windows = [(int(x0), int(y0), math.ceil(x1 - x0), math.ceil(y1 - y0)) for x0, y0, x1, y1 in rects]
    if sum(w * h for _, _, w, h in windows) > WINDOW_MAX_SHARE * width * height:
        return None
    return [window for window in windows if min(window[2:]) >= 16]


def merged(rects: list[list[float]]) -> list[list[float]]:
    """Overlapping rectangles (x0, y0, x1, y1) joined until none overlap."""
    rects = [list(r) for r in rects]
    changed = True
    while changed:
        changed = False
        for i in range(len(rects)):
            for j in range(len(rects) - 1, i, -1):
                a, b = rects[i], rects[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    rects[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del rects[j]
                    changed = True
    return rects
