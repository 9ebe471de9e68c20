"""`python -m worker`: a supervisor that keeps one worker process running.

The child process does the work; the supervisor restarts it when it exits, whether it
recycled itself (WORKER_MAX_IMAGES / WORKER_MAX_RSS_MB) or crashed on a poison image.
`python -m worker --check` is the liveness/readiness probe: it succeeds only while the
worker is connected to its broker (it touches WORKER_HEALTH_FILE every few seconds).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from imagescan import backoff, config, metrics
from imagescan.config import Settings
from imagescan.logbus import configure_logging

HEALTH_MAX_AGE_SECONDS = 30
log = logging.getLogger("imagescan.worker")


def health_problem(settings: Settings) -> str | None:
    try:
        age = time.time() - os.stat(settings.worker_health_file).st_mtime
    except OSError:
        return "worker is not connected to its broker"
    return f"worker health file is {age:.0f}s old" if age > HEALTH_MAX_AGE_SECONDS else None


def check(settings: Settings) -> int:
    problem = health_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
    return 1 if problem else 0


def run_child(settings: Settings) -> int:
    from .consumer import Consumer
    from .services import WorkerServices

    configure_logging(settings, "worker")
    services = WorkerServices.build(settings)
    try:
        # Load the known faces now rather than on the first image (seconds at a million faces).
        log.info("face index loaded", extra={"faces": services.face_index.sync()})
    except Exception as exc:  # Redis not there yet: the first image's add_image_faces syncs  # noqa: BLE001
        log.warning("face index not loaded at start: %r", exc)
    consumer = Consumer(services)
    consumer.install_signal_handlers()
    if settings.retention_days:
        from .retention import RetentionTask

        RetentionTask(services).start()
    consumer.run()
    logging.getLogger().handlers[-1].flush()
    return 0


def supervise(settings: Settings) -> int:
    configure_logging(settings, "worker", to_broker=False)
    stopping = False
    child: subprocess.Popen | None = None

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    restarts = 0
    exporter = _start_exporter(settings)
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "worker", "--child"])
        if exporter:
            exporter.child_pid = child.pid
        code = child.wait()
        if exporter:
            exporter.child_exited(child.pid, code, restarting=not stopping)
        if stopping:
            break
        # Back off only on crashes: a clean exit is a recycle (WORKER_MAX_IMAGES), which under
        # load comes quickly and must not slow the next start down.
        crashed_quickly = code != 0 and time.monotonic() - started < 10
        restarts = restarts + 1 if crashed_quickly else 0
        log.info("worker process exited with %s; starting a new one", code, extra={"exit_code": code})
        time.sleep(backoff.pause(restarts + 1, first=0.5, most=30))  # no tight loop when it cannot start
    if exporter and not settings.metrics_dir:
        metrics.remove_directory(exporter.directory)
    return 0


def _start_exporter(settings: Settings):
    """Serve METRICS_PORT from the supervisor; every child counts into the same directory."""
    if not settings.metrics_port:
        return None
    directory = metrics.enable_multiprocess(settings.metrics_dir, "worker")
    from .metrics import SupervisorExporter  # defines metrics: only once multiprocess mode is on

    exporter = SupervisorExporter(directory, is_ready=lambda: health_problem(settings) is None)
    metrics.serve(settings.metrics_port, exporter.registry, "worker")
    return exporter


def _check_analyzers(settings: Settings) -> None:
    """Stop at once, with one line, on an ANALYZERS name no installed analyzer has (rather than
    in every worker process the supervisor would start)."""
    from imagescan.analyzers.registry import check_names

    try:
        check_names(settings.analyzers)
    except config.ConfigError as error:
        raise SystemExit(f"worker: configuration error: {error}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 0 iff the worker is connected")
    mode.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    mode.add_argument("--retry", metavar="DIGEST",
                      help="analyse a failed image again (MAX_ATTEMPTS fresh attempts)")
    args = parser.parse_args(argv)
    settings = config.load("worker")
    if args.check:
        return check(settings)
    if args.retry:
        from .retry import retry_failed

        return retry_failed(settings, args.retry)
    _check_analyzers(settings)
    if args.child:
        return run_child(settings)
    return supervise(settings)


if __name__ == "__main__":
    sys.exit(main())
