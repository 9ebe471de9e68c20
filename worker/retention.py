"""The retention task: every RETENTION_INTERVAL seconds, erase images older than RETENTION_DAYS.

Every worker process runs it; a lock in Redis that expires after the interval (see
imagescan.erasure.retention_pass) makes one pass run per interval, whichever worker gets it,
and each pass erases at most a bounded number of images, so it never holds a worker for long.
"""

from __future__ import annotations

import logging
import os
import random
import threading

from imagescan import erasure

log = logging.getLogger("imagescan.worker.retention")


class RetentionTask:
    def __init__(self, services, stop: threading.Event | None = None):
        self.services = services
        self.stop_event = stop or threading.Event()
        self.holder = f"{services.settings.hostname}:{os.getpid()}"
        self.thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> RetentionTask:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)

    def run_once(self) -> int | None:
        settings = self.services.settings
        erased = erasure.retention_pass(self.services.store, self.services.blobs, settings.retention_days,
                                        settings.retention_interval, self.holder)
        if erased:
            log.info("retention erased %d image(s) older than %d days", erased, settings.retention_days,
                     extra={"erased": erased})
        return erased

    def _run(self) -> None:
        interval = self.services.settings.retention_interval
        # A random first wait: workers started together do not all ask for the lock at once.
        while not self.stop_event.wait(random.uniform(0.1, 1.0) * interval):
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - Redis away or a bad record: next interval retries
                log.warning("retention pass failed: %r", exc)
