"""Worker side of the jobs API: draw an image's analysis on it for every job waiting on it.

Two ways in, one way through:
- after an image's analysis ends (done or failed), the worker calls `render_jobs_for_image`;
- a job created after the analysis had ended arrives as a `render` work message
  (`{"kind": "render", "job_id", "sha256"}`), handled by `handle_render`.
Both render every job still waiting on the image (`keys.image_jobs`), so a job reached by both
is rendered once and completed once (completing a finished job is a no-op).

Permanent problems (the analysis failed, the original is missing or undecodable) fail the jobs
with a message; infrastructure errors (Redis down) propagate so the message is retried.
"""

from __future__ import annotations

import logging

from imagescan import job_records, render, transforms
from imagescan.digests import sha256_hex
from imagescan.imaging import ImageRejected
from imagescan.store import DONE, FAILED

log = logging.getLogger("imagescan.worker.jobs")


class RenderFailed(Exception):
    """The output cannot be made from this image; the message says why."""


def _render_output(services, sha256: str) -> transforms.Rendered:
    data = services.blobs.get(sha256)
    if data is None:
        raise RenderFailed("the original image is no longer stored")
    analysis = services.store.analysis(sha256) or {}
    try:
        image = transforms.open_image(data, services.settings.max_image_pixels)
        return render.render_analysis(image, analysis)
    except ImageRejected as rejected:
        raise RenderFailed(rejected.reason) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on corrupt data; all are final
        raise RenderFailed(f"the image cannot be decoded: {exc!r}") from None


def render_jobs_for_image(services, sha256: str) -> int:
    """Finish every job waiting on this image if its analysis has ended; returns how many."""
    waiting = job_records.waiting_for(services.redis, sha256)
    if not waiting:
        return 0
    status = services.store.status(sha256)
    if status == FAILED:
        reason = (services.store.analysis(sha256) or {}).get("error") or "the analysis failed"
        return _fail_all(services, sha256, waiting, f"image analysis failed: {reason}")
    if status != DONE:
        return 0  # still queued or processing: this runs again when the analysis ends

    for job_id in waiting:
        job_records.mark_processing(services.redis, job_id)
    try:
        output = _render_output(services, sha256)
    except RenderFailed as failure:
        return _fail_all(services, sha256, waiting, str(failure))
    output_sha256 = sha256_hex(output.data)
    services.blobs.put(output_sha256, output.data, output.content_type)
    for job_id in waiting:
        job_records.complete(services.redis, job_id, sha256, output_sha256, output.content_type)
    if services.store.status(sha256) is None:
        # Erased while rendering: the erasure could not see this output yet.
        services.blobs.delete(output_sha256)
        return 0
    log.info("rendered %d job(s) for image %s", len(waiting), sha256,
             extra={"sha256": sha256, "output": output_sha256, "jobs": waiting})
    return len(waiting)


def _fail_all(services, sha256: str, job_ids: list[str], message: str) -> int:
    for job_id in job_ids:
        job_records.fail(services.redis, job_id, sha256, message)
    log.info("failed %d job(s) for image %s: %s", len(job_ids), sha256, message,
             extra={"sha256": sha256, "jobs": job_ids})
    return len(job_ids)


def handle_render(services, message: dict) -> None:
    """A `render` work message: finish its job (and any other waiting on the same image)."""
    job_id = job_records.parse_job_id(message.get("job_id", ""))
    job = job_records.get(services.redis, job_id) if job_id else None
    if job is None or job.finished:
        log.debug("render message for unknown or finished job %r ignored", message.get("job_id"))
        return
    if not job.sha256:
        job_records.fail(services.redis, job.job_id, "", "the job names no image")
        return
    render_jobs_for_image(services, job.sha256)


def fail_job(services, job_id: str, message: str) -> None:
    """Fail one job (e.g. its render message was dead-lettered); unknown or finished jobs are left."""
    canonical = job_records.parse_job_id(job_id or "")
    job = job_records.get(services.redis, canonical) if canonical else None
    if job is not None and not job.finished:
        job_records.fail(services.redis, job.job_id, job.sha256, message)
