"""What an analyzer is: one kind of analysis of an image, as one unit.

An analyzer says what it needs from the image (`needs`), finds something in it (`analyze`),
and says what the finding becomes in the image record (`record`): the fields of
`/images/<digest>` it fills, after writing the finding to any index of its own. The default
`record` stores the finding under the analyzer's name, with the image record and nowhere
else, which is all most analyzers need.

Analyzers are found by name through the `imagescan.analyzers` entry-point group
(imagescan.analyzers.registry) and run in the order ANALYZERS lists them (worker.pipeline).
A new one is one module with one class like this, plus its entry point and its name in
ANALYZERS:

    class Brightness(Analyzer):
        name = "brightness"
        needs = Need.PIXELS

        def analyze(self, pixels):
            return {"mean": round(ImageStat.Stat(pixels.convert("L")).mean[0], 1)}
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Need(StrEnum):
    """The view of the image an analyzer's `analyze` is given."""

    PIXELS = "pixels"  # a Pillow RGB image, turned upright by its EXIF orientation
    EXIF = "exif"  # the Pillow Exif of the original, or None when it has none (or garbage)
    ORIGINAL = "original"  # the uploaded bytes as they are


# The fields of `/images/<digest>` that describe the image itself rather than a finding
# (imagescan.store.ImageStore.analysis): no analyzer may fill one.
IMAGE_FIELDS = frozenset({
    "status", "digests", "names", "names_total", "size", "received_at", "analyzed_at",
    "format", "width", "height", "error",
})


class Analyzer:
    """Base class of every analyzer; a subclass sets `name` and `needs` and defines `analyze`.

    Constructed once per worker process with that process's services (`worker`: its settings,
    Redis client, face index and the engines it was built with), before the first image.
    """

    name: str = ""  # its name in ANALYZERS and its entry point's; by default its record field
    needs: Need = Need.PIXELS

    def __init__(self, worker: Any = None):
        self.worker = worker

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields of `/images/<digest>` that `record` fills."""
        return (self.name,)

    def analyze(self, view) -> Any:
        """What this analyzer finds in the view of the image it needs. Raising fails the
        attempt (the message is retried, then set aside); an ordinary image never should."""
        raise NotImplementedError

    def record(self, sha256: str, finding) -> dict[str, Any]:
        """The JSON-ready fields the finding becomes in the image record. Runs after every
        analyzer's `analyze`, and again if the save is retried: any index write is idempotent."""
        return {self.name: finding}


class EngineAnalyzer(Analyzer):
    """An analyzer that runs a recognition engine: the worker's own when it was built with one
    (tests and benchmarks pass `plates=` / `faces=`: the attribute of the analyzer's name),
    else the one `load_engine` makes from the settings, loaded once per worker process."""

    def __init__(self, worker):
        super().__init__(worker)
        self.engine = getattr(worker, self.name, None) or self.load_engine(worker.settings)

    def load_engine(self, settings):
        raise NotImplementedError
