"""Optional plate engine: OpenALPR through its `openalpr` Python bindings.

The bindings are a thin ctypes wrapper around the native libopenalpr, which most
systems do not have. The constructor therefore either returns a working engine or
raises `EngineUnavailable` saying what is missing; it never half-loads.
"""

from __future__ import annotations

import io
import logging

from PIL import Image

from imagescan.analyzers import Box, Candidate, EngineUnavailable, PlateRead
from imagescan.platetext import normalize_plate

log = logging.getLogger(__name__)

# Our region hints -> OpenALPR country codes (it has no "auto": US plates are its default).
COUNTRIES = {"auto": "us", "us": "us", "eu": "eu", "br": "br"}
DEFAULT_CONFIG = "/etc/openalpr/openalpr.conf"
DEFAULT_RUNTIME_DATA = "/usr/share/openalpr/runtime_data"


class OpenAlprPlateRecognizer:
    """OpenALPR engine. Options: region ("auto", "us", "eu", "br"), top_n candidates,
    config_file and runtime_data (where the native install keeps them)."""

    name = "openalpr"

    def __init__(
        self,
        region: str = "auto",
        top_n: int = 8,
        config_file: str = DEFAULT_CONFIG,
        runtime_data: str = DEFAULT_RUNTIME_DATA,
        **_ignored,
    ) -> None:
        country = COUNTRIES.get((region or "auto").lower())
        if country is None:
            raise ValueError(f"unknown plate region {region!r}; choose from {', '.join(COUNTRIES)}")
        self._alpr = _load_alpr(country, config_file, runtime_data)
        self._alpr.set_top_n(int(top_n))

    def recognize(self, image: Image.Image) -> list[PlateRead]:
        """Plates in the image, best first; [] when none. An engine failure raises (a failed
        attempt, retried), never passes for an image without plates."""
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="BMP")  # lossless, and libopenalpr decodes it
        found = self._alpr.recognize_array(buffer.getvalue())
        reads = [read for read in map(_plate_read, found.get("results", [])) if read is not None]
        return sorted(reads, key=lambda read: read.confidence, reverse=True)

    def close(self) -> None:
        self._alpr.unload()


def _load_alpr(country: str, config_file: str, runtime_data: str):
    try:
        from openalpr import Alpr
    except ImportError as error:
        raise EngineUnavailable(
            "openalpr engine unavailable: the `openalpr` Python bindings are not installed"
        ) from error
    try:
        alpr = Alpr(country, config_file, runtime_data)
    except OSError as error:  # the bindings load libopenalpr.so with ctypes here
        raise EngineUnavailable(
            f"openalpr engine unavailable: cannot load the native libopenalpr ({error})"
        ) from error
    if not alpr.is_loaded():
        raise EngineUnavailable(
            f"openalpr engine unavailable: libopenalpr did not load with {config_file} and {runtime_data}"
        )
    return alpr


def _plate_read(result: dict) -> PlateRead | None:
    candidates = []
    for candidate in result.get("candidates", []):
        plate = normalize_plate(candidate.get("plate", ""))
        if plate and plate not in {c.plate for c in candidates}:
            candidates.append(Candidate(plate, _unit(candidate.get("confidence", 0.0))))
    plate = normalize_plate(result.get("plate", ""))
    if not plate:
        return None
    if not candidates or candidates[0].plate != plate:
        candidates.insert(0, Candidate(plate, _unit(result.get("confidence", 0.0))))
    xs = [point["x"] for point in result.get("coordinates", [])] or [0]
    ys = [point["y"] for point in result.get("coordinates", [])] or [0]
    box = Box(int(min(xs)), int(min(ys)), int(max(xs) - min(xs)), int(max(ys) - min(ys)))
    return PlateRead(plate, candidates[0].confidence, box, tuple(candidates))


def _unit(percent: float) -> float:
    """OpenALPR scores are percentages."""
    return max(0.0, min(1.0, float(percent) / 100.0))
