"""A plate engine for fault tests: the image's width picks its behaviour.

It lets a test put a worker "in the middle of an image" deterministically, or feed it a
poison image, without any test hook in the production code. Every call is written to
files under $FAULT_DIR so the test can count analyses and deliveries.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from imagescan.analyzers import Box, Candidate, PlateRead

SLOW_WIDTH = 321  # the first analysis of such an image waits $FAULT_SLOW_SECONDS
RAISING_WIDTH = 322  # the analysis raises, every time
EXITING_WIDTH = 323  # the worker process dies (os._exit) in the analysis, every time


def _record(name: str, line: str) -> None:
    with open(Path(os.environ["FAULT_DIR"]) / name, "a") as out:
        out.write(line + "\n")


def plate_of(pixels_digest: str) -> str:
    """Every ordinary image shows one plate of its own, so the plate index has entries to lose."""
    return "F" + pixels_digest[:6].upper()


class FaultPlates:
    name = "fault"

    def __init__(self, region: str = "auto"):  # every plate engine takes the region hint
        self.region = region

    def recognize(self, image) -> list[PlateRead]:
        digest = hashlib.sha256(image.tobytes()).hexdigest()
        _record("analyses", f"{digest} {os.getpid()}")
        if image.width == RAISING_WIDTH:
            _record("deliveries-raising", str(os.getpid()))
            raise RuntimeError("fault engine: this image always crashes the analysis")
        if image.width == EXITING_WIDTH:
            _record("deliveries-exiting", str(os.getpid()))
            os._exit(3)
        if image.width == SLOW_WIDTH:
            started = Path(os.environ["FAULT_DIR"]) / f"slow-started-{digest}"
            if not started.exists():
                started.write_text(str(os.getpid()))
                time.sleep(float(os.environ.get("FAULT_SLOW_SECONDS", "60")))
        delay = float(os.environ.get("FAULT_DELAY_SECONDS", "0"))
        if delay:
            time.sleep(delay)
        plate = plate_of(digest)
        return [PlateRead(plate, 0.9, Box(0, 0, 10, 5), (Candidate(plate, 0.9),))]
