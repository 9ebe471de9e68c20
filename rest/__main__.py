"""`python -m rest`: serve the REST API with gunicorn on $PORT."""

from __future__ import annotations

import os
import sys

from gunicorn.app.base import BaseApplication

from imagescan import config, metrics
from imagescan.config import Settings
from imagescan.logbus import configure_logging


class RestServer(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self):
        self.cfg.set("bind", f"0.0.0.0:{self.settings.port}")
        # Threads: uploads mostly wait on Redis and the broker's confirm.
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("workers", self.settings.gunicorn_workers)
        self.cfg.set("threads", self.settings.gunicorn_threads)
        self.cfg.set("timeout", 120)
        # SIGTERM: finish in-flight requests first. Kubernetes gives the pod longer than this
        # (terminationGracePeriodSeconds) so a long upload is not cut mid-way.
        self.cfg.set("graceful_timeout", self.settings.gunicorn_graceful_timeout)
        self.cfg.set("keepalive", 5)
        self.cfg.set("accesslog", None)  # every call is logged by the app, with its request id
        self.cfg.set("post_worker_init", _post_worker_init)

    def load(self):
        from .app import create_app

        return create_app(self.settings)


def _post_worker_init(worker):
    # Each gunicorn worker process gets its own log-bus thread (threads do not survive fork).
    configure_logging(Settings.from_env(), "rest")


def main() -> int:
    settings = config.load("rest")
    configure_logging(settings, "rest", to_broker=False)
    # Before any worker process is forked: they all count into this directory.
    metrics_dir, master = metrics.enable_multiprocess(settings.metrics_dir, "rest"), os.getpid()
    try:
        RestServer(settings).run()
    finally:
        if os.getpid() == master and not settings.metrics_dir:  # worker processes leave through here too
            metrics.remove_directory(metrics_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
