"""Prometheus plumbing shared by the services: multiprocess files, scrape registries, a scrape port.

Processes that count together (gunicorn's worker processes; the worker's supervisor and the
child process it restarts) use prometheus_client's multiprocess mode: each process writes its
samples to files in one directory, and whichever process answers a scrape sums the files.
That directory must be chosen before the first metric object exists, so the entry points
call `enable_multiprocess` before importing a module that defines metrics.

A worker child that is recycled leaves its files behind; `fold_dead_process` adds its
counters and histograms into one archive file, so the counts survive the recycle and the
directory does not grow by two files per recycle.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import threading

log = logging.getLogger("imagescan.metrics")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client itself
_ARCHIVE = "archive"


def enable_multiprocess(directory: str, service: str) -> str:
    """Count in multiprocess mode, in `directory` (a fresh temporary one when empty), emptied first:
    files left by an earlier run would be added to this run's counts. Child processes inherit it."""
    from prometheus_client import values

    directory = directory or tempfile.mkdtemp(prefix=f"imagescan-metrics-{service}-")
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    # Written for prometheus_client (and inherited by child processes), never read by our code.
    os.environ[MULTIPROCESS_ENV] = directory
    values.ValueClass = values.MultiProcessValue()
    return directory


def multiprocess_directory() -> str | None:
    from prometheus_client import values

    return os.environ.get(MULTIPROCESS_ENV) if values.ValueClass is not values.MutexValue else None


def remove_directory(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class _Forward:
    """The metrics of this process's default registry (when not in multiprocess mode)."""

    def collect(self):
        from prometheus_client import REGISTRY

        return REGISTRY.collect()


class _Locked:
    def __init__(self, collector, lock: threading.Lock):
        self.collector, self.lock = collector, lock

    def collect(self):
        with self.lock:
            return list(self.collector.collect())


def scrape_registry(*collectors, lock: threading.Lock | None = None):
    """A registry of this process tree's metrics (all processes' files in multiprocess mode)
    plus `collectors` (read at scrape time). `lock` is held while the files are read."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    directory = multiprocess_directory()
    if directory:
        files = MultiProcessCollector(None, path=directory)
        registry.register(_Locked(files, lock) if lock else files)
    else:
        registry.register(_Forward())
    for collector in collectors:
        registry.register(collector)
    return registry


def exposition(registry) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(port: int, registry, service: str) -> bool:
    """Serve `registry` on http://0.0.0.0:port/metrics from a thread; a port in use is logged, not fatal."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr="0.0.0.0", registry=registry)
    except OSError as exc:
        log.warning("%s metrics not served on port %d: %r", service, port, exc)
        return False
    log.info("%s metrics on port %d", service, port, extra={"metrics_port": port})
    return True


def fold_dead_process(directory: str, pid: int) -> None:
    """Add a finished process's counters and histograms to the archive files and delete its files.
    The caller holds the scrape lock: a scrape must never see them counted twice or not at all."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    mark_process_dead(pid, directory)  # its live gauges
    for kind in ("counter", "histogram"):
        dead = os.path.join(directory, f"{kind}_{pid}.db")
        if not os.path.exists(dead):
            continue
        archive = os.path.join(directory, f"{kind}_{_ARCHIVE}.db")
        sources = [path for path in (archive, dead) if os.path.exists(path)]
        merged = MultiProcessCollector.merge(sources, accumulate=False)
        partial = os.path.join(directory, f"{kind}_{_ARCHIVE}.partial")  # not *.db: never scraped
        output = MmapedDict(partial)
        try:
            for metric in merged:
                for sample in metric.samples:
                    key = mmap_key(metric.name, sample.name, list(sample.labels), list(sample.labels.values()),
                                   metric.documentation)
                    output.write_value(key, sample.value, 0.0)
        finally:
            output.close()
        os.replace(partial, archive)
        os.remove(dead)
