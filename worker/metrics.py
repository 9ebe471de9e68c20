"""The worker's metrics, and the supervisor's scrape port.

The supervisor serves METRICS_PORT for as long as the pod lives; the child process it
(re)starts counts into the shared multiprocess directory. When a child exits, its counts are
folded into the archive files (imagescan.metrics.fold_dead_process), so a recycle never
loses or repeats a count. What only exists while a child runs (its memory, the face-index
size) is read or written per live process.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from imagescan import metrics, topology
from imagescan.faceindex import FaceIndex

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)

IMAGES = Counter("imagescan_worker_images", "Images the worker finished with, by outcome", ["outcome"])
ATTEMPTS = Counter("imagescan_worker_attempts", "Work message deliveries handled, by kind and result",
                   ["kind", "result"])
DEAD_LETTERS = Counter("imagescan_worker_dead_letters", "Dead-lettered messages recorded, by kind", ["kind"])
STEP_SECONDS = Histogram("imagescan_worker_analysis_seconds",
                         "Time of one analysis step of an image (decode, then each analyzer by name)",
                         ["step"], buckets=STEP_BUCKETS)
IMAGE_SECONDS = Histogram("imagescan_worker_image_seconds",
                          "Time to handle one analyze message, Redis writes included", buckets=STEP_BUCKETS)
FACE_INDEX_FACES = Gauge("imagescan_worker_face_index_faces", "Face encodings in the worker's in-memory index",
                         multiprocess_mode="livemax")
FACE_INDEX_SYNC = Histogram("imagescan_worker_face_index_sync_seconds",
                            "Time to catch the in-memory face index up with Redis", buckets=STEP_BUCKETS)
RESTARTS = Counter("imagescan_worker_process_restarts",
                   "Worker processes started again by the supervisor, by why the last one left "
                   "(recycle: WORKER_MAX_IMAGES/WORKER_MAX_RSS_MB; crash: any other exit)",
                   ["reason"])
# Zeros from the start, so that rate() and increase() (and the alerts) see the first event.
for _kind_name in topology.WORK_KINDS:
    DEAD_LETTERS.labels(_kind_name)
for _reason in ("recycle", "crash"):
    RESTARTS.labels(_reason)


@contextmanager
def timed_step(step: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        STEP_SECONDS.labels(step).observe(time.perf_counter() - started)


def _kind(message: dict) -> str:
    return message.get("kind") if message.get("kind") in topology.WORK_KINDS else "other"


def counts_attempts(interrupted_by: type[Exception]):
    """Count each delivery given to the decorated handler by its result: ok, crashed, or
    interrupted (`interrupted_by` raised: the message goes back to the queue untried)."""

    def decorate(handle):
        @functools.wraps(handle)
        def wrapper(services, message, *args, **kwargs):
            started, result = time.perf_counter(), "crashed"
            try:
                outcome = handle(services, message, *args, **kwargs)
                result = "ok"
                return outcome
            except interrupted_by:
                result = "interrupted"
                raise
            finally:
                ATTEMPTS.labels(_kind(message), result).inc()
                if _kind(message) == topology.ANALYZE and result == "ok":
                    IMAGE_SECONDS.observe(time.perf_counter() - started)

        return wrapper

    return decorate


def counts_dead_letters(handle_dead):
    @functools.wraps(handle_dead)
    def wrapper(services, message, *args, **kwargs):
        result = handle_dead(services, message, *args, **kwargs)
        DEAD_LETTERS.labels(_kind(message)).inc()
        return result

    return wrapper


class MeasuredFaceIndex(FaceIndex):
    """The face index, timing each catch-up with Redis and reporting its size."""

    def sync(self) -> int:
        with FACE_INDEX_SYNC.time():
            loaded = super().sync()
        FACE_INDEX_FACES.set(len(self))
        return loaded

    def add_image_faces(self, sha256: str, faces):
        found = super().add_image_faces(sha256, faces)
        FACE_INDEX_FACES.set(len(self))  # 0 with the face-search tier: the worker holds none
        return found


# ---- the supervisor's side ---------------------------------------------------------------


class SupervisorExporter:
    """Serves the worker's metrics on METRICS_PORT and keeps the counts of finished children."""

    def __init__(self, directory: str, is_ready):
        self.directory = directory
        self.child_pid: int | None = None
        self._is_ready = is_ready
        self._files_lock = threading.Lock()
        self.registry = metrics.scrape_registry(_ChildCollector(self), lock=self._files_lock)

    def child_exited(self, pid: int, code: int, restarting: bool) -> None:
        self.child_pid = None
        with self._files_lock:
            metrics.fold_dead_process(self.directory, pid)
        if restarting:
            RESTARTS.labels("recycle" if code == 0 else "crash").inc()

    def ready(self) -> bool:
        return self._is_ready()


class _ChildCollector:
    def __init__(self, exporter: SupervisorExporter):
        self.exporter = exporter

    def collect(self):
        rss = GaugeMetricFamily("imagescan_worker_resident_memory_bytes",
                                "Resident memory of the worker process doing the analyses")
        pid = self.exporter.child_pid
        if pid is not None and (resident := _resident_bytes(pid)) is not None:
            rss.add_metric([], resident)
        ready = GaugeMetricFamily("imagescan_worker_ready", "1 while the worker is connected to its broker")
        ready.add_metric([], 1.0 if self.exporter.ready() else 0.0)
        return [rss, ready]


def _resident_bytes(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
