"""What the worker does with each message. Idempotent: a message may arrive more than once.

Outcomes:
- `Done`: acknowledge (analysis stored, or the image failed for a reason of its own such as
  a corrupt file, which retrying cannot change, or the image was already done).
- any exception escaping `handle`: the analysis crashed; the consumer returns the message to
  the queue for another attempt.
Attempts are counted here, in Redis, before the work starts: so a crash that takes the whole
process down counts too, whatever the RabbitMQ release counts. The delivery after the
MAX_ATTEMPTS-th sets the work aside as failed instead of running it again. A message the
broker itself gave up on (a delivery limit of its own) arrives in `handle_dead`.
Transient Redis and blob store outages are waited out inside `with_redis`, so they never use
up attempts.
"""

from __future__ import annotations

import logging
import time

from tenacity import RetryError

from imagescan import backoff, imaging, keys, topology
from imagescan.blobs import BlobStoreUnavailable
from imagescan.redisclient import REDIS_DOWN

from . import job_outputs, pipeline
from .metrics import IMAGES, counts_attempts, counts_dead_letters
from .pipeline import OriginalMissing
from .services import WorkerServices

log = logging.getLogger("imagescan.worker")
ATTEMPTS_KEPT_SECONDS = 30 * 86400
STORAGE_DOWN = (*REDIS_DOWN, BlobStoreUnavailable)  # REDIS_DOWN: also a cluster failing over


class Stopping(Exception):
    """The worker was asked to stop while waiting for Redis; the message goes back to the queue."""


def with_redis(operation, should_stop, *, what: str):
    """Run a storage operation, retrying with back-off while Redis or the blob store is unreachable."""

    def log_retry(state):
        log.warning("storage unavailable during %s, retrying in %.1fs: %r", what, state.upcoming_sleep,
                    state.outcome.exception())

    retrying = backoff.policy(STORAGE_DOWN, first=0.2, most=5, stop=should_stop, before_sleep=log_retry)
    try:
        return retrying(operation)
    except RetryError as exc:
        raise Stopping(what) from exc.last_attempt.exception()


def count_attempt(services: WorkerServices, kind: str, subject: str) -> int:
    """One more started attempt at this work; returns how many there have been."""
    key = keys.work_attempts(kind, subject)
    with services.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, ATTEMPTS_KEPT_SECONDS)
        return int(pipe.execute()[0])


def attempts_used_up(services: WorkerServices, kind: str, subject: str, should_stop) -> bool:
    attempt = with_redis(lambda: count_attempt(services, kind, subject), should_stop, what="attempts")
    return attempt > services.settings.max_attempts


@counts_attempts(interrupted_by=Stopping)
def handle(services: WorkerServices, message: dict, should_stop=lambda: False) -> None:
    if message["kind"] == topology.RENDER:
        if attempts_used_up(services, topology.RENDER, str(message.get("job_id", "")), should_stop):
            with_redis(lambda: handle_dead(services, message), should_stop, what="set aside")
        else:
            with_redis(lambda: job_outputs.handle_render(services, message), should_stop, what="render")
        return
    sha256 = message["sha256"]
    context = {"request_id": message.get("request_id", ""), "sha256": sha256}
    previous = with_redis(lambda: services.store.mark_processing(sha256), should_stop, what="status")
    if previous is None:
        log.warning("no record for %s; message dropped", sha256, extra=context)
        IMAGES.labels("unknown").inc()
        return
    if previous == "done":
        log.debug("already analysed %s", sha256, extra=context)
        IMAGES.labels("already_done").inc()
        with_redis(lambda: job_outputs.render_jobs_for_image(services, sha256), should_stop, what="jobs")
        return
    if attempts_used_up(services, topology.ANALYZE, sha256, should_stop):
        with_redis(lambda: handle_dead(services, message), should_stop, what="set aside")
        return
    log.debug("analysing %s", sha256, extra=context)
    started = time.monotonic()
    try:
        outcome = with_redis(lambda: pipeline.analyze(services, sha256), should_stop, what="read original")
    except (imaging.ImageRejected, OriginalMissing) as rejected:
        reason = getattr(rejected, "reason", None) or str(rejected)
        with_redis(lambda: services.store.mark_failed(sha256, reason), should_stop, what="status")
        (log.error if isinstance(rejected, OriginalMissing) else log.info)(
            "image %s failed: %s", sha256, reason, extra={**context, "outcome": "failed"})
        IMAGES.labels("failed").inc()
        with_redis(lambda: job_outputs.render_jobs_for_image(services, sha256), should_stop, what="jobs")
        return
    results = with_redis(lambda: pipeline.record(services, sha256, outcome["findings"]),
                         should_stop, what="analyzer indexes")
    info = outcome["info"]
    try:
        stored = with_redis(
            lambda: services.store.save_analysis(
                sha256, format=info.format, width=info.width, height=info.height,
                results=results, camera_label=pipeline.camera_label(results),
            ),
            should_stop, what="save analysis",
        )
    except KeyError:  # erased while it was analysed: the erasure's tombstone kept its faces out
        log.info("image %s was erased during its analysis; nothing saved", sha256,
                 extra={**context, "outcome": "erased"})
        IMAGES.labels("erased").inc()
        return
    IMAGES.labels("done" if stored else "duplicate").inc()
    plates, faces = results.get("plates", []), results.get("faces", [])
    log.info(
        "inserted analysis of %s: %d plate(s), %d face(s), geotag %s",
        sha256, len(plates), len(faces), "yes" if results.get("geotag") else "no",
        extra={**context, "outcome": "done" if stored else "duplicate", "db_insert": stored,
               "plates": [p["plate"] for p in plates], "analyzers": [a.name for a in services.analyzers],
               "seconds": round(time.monotonic() - started, 3)},
    )
    with_redis(lambda: job_outputs.render_jobs_for_image(services, sha256), should_stop, what="jobs")


@counts_dead_letters
def handle_dead(services: WorkerServices, message: dict) -> None:
    """Work that crashed on each of its attempts (counted here, or by a delivery limit on the
    broker): record why, never lose it silently."""
    attempts = services.settings.max_attempts
    if message.get("kind") == topology.ANALYZE and message.get("sha256"):
        reason = f"the analysis crashed on each of {attempts} attempts; the image was set aside"
        services.store.mark_failed(message["sha256"], reason)
        log.info("dead-lettered image %s", message["sha256"], extra={"sha256": message["sha256"], "outcome": "failed"})
        IMAGES.labels("dead_letter").inc()
        job_outputs.render_jobs_for_image(services, message["sha256"])
    elif message.get("kind") == topology.RENDER:
        job_outputs.fail_job(services, message.get("job_id", ""), f"rendering crashed on each of {attempts} attempts")
