"""Analyzers registered for a test the way any package registers them: by entry points.

`register_analyzers` writes the metadata of a small distribution (a `.dist-info` folder with
METADATA and entry_points.txt, what `pip install` would leave) into a folder it puts first on
`sys.path`; importlib.metadata then lists its entry points in the `imagescan.analyzers` group
beside the built-in ones, until the test ends and the folder leaves `sys.path` again. No code
of the package is patched: the registry reads entry points on every lookup.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from imagescan.analyzers.registry import GROUP

DISTRIBUTION = "imagescan_test_analyzers"


def register_analyzers(folder: Path, monkeypatch: pytest.MonkeyPatch, analyzers: dict[str, str]) -> None:
    """Make `analyzers` (name -> "module:Class") installed analyzers for this test."""
    dist_info = folder / f"{DISTRIBUTION}-0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 0.0\n")
    lines = [f"[{GROUP}]"] + [f"{name} = {target}" for name, target in analyzers.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(folder))  # also invalidates importlib's caches
    importlib.invalidate_caches()
