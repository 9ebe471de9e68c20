"""Finding analyzers by name: the `imagescan.analyzers` entry-point group.

Every analyzer, the built-in ones included, is an entry point of that group in some installed
distribution's metadata (pyproject.toml's `[project.entry-points."imagescan.analyzers"]` for
this package): `name = "module:Class"`. So a package of analyzers needs only to be installed,
and a test registers its own by putting a distribution's metadata on `sys.path`
(tests/analyzer_plugins.py) instead of patching anything here. Entry points are read each
time, not cached: what is installed is what counts.

Only the analyzers ANALYZERS names are imported, so an engine nobody asked for is never loaded.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from ..config import ConfigError
from .base import IMAGE_FIELDS, Analyzer

GROUP = "imagescan.analyzers"


def installed() -> dict[str, EntryPoint]:
    """Name -> entry point of every analyzer installed (the first one of a name wins)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        found.setdefault(point.name, point)
    return found


def check_names(names: tuple[str, ...]) -> None:
    """ConfigError naming ANALYZERS unless every name is an installed analyzer, once each."""
    if not names:
        raise ConfigError("ANALYZERS must name at least one analyzer")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"ANALYZERS names {', '.join(repeated)} more than once")
    known = installed()
    unknown = [name for name in names if name not in known]
    if unknown:
        choices = ", ".join(sorted(known)) or "none (is the imagescan package installed?)"
        raise ConfigError(
            f"ANALYZERS names {', '.join(map(repr, unknown))}, which no installed analyzer "
            f"provides (entry-point group {GROUP}); installed: {choices}")


def load_analyzers(names: tuple[str, ...], worker) -> tuple[Analyzer, ...]:
    """The analyzers ANALYZERS names, in its order, each constructed with the worker's services."""
    check_names(names)
    known = installed()
    analyzers = tuple(_construct(known[name], worker) for name in names)
    _check_fields(analyzers)
    return analyzers


def _construct(point: EntryPoint, worker) -> Analyzer:
    factory = point.load()
    analyzer = factory(worker)
    if analyzer.name != point.name:
        raise ConfigError(f"the analyzer {point.value} is registered as {point.name!r} "
                          f"but calls itself {analyzer.name!r}")
    return analyzer


def _check_fields(analyzers: tuple[Analyzer, ...]) -> None:
    """No analyzer may fill a field of the image itself, or one another analyzer fills."""
    owner: dict[str, str] = {}
    for analyzer in analyzers:
        for field in analyzer.fields:
            if field in IMAGE_FIELDS:
                raise ConfigError(f"the analyzer {analyzer.name!r} would overwrite the image's {field!r}")
            if field in owner:
                raise ConfigError(f"the analyzers {owner[field]!r} and {analyzer.name!r} both fill {field!r}")
            owner[field] = analyzer.name
