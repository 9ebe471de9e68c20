"""Placeholder until job rendering lands: the hooks the worker calls."""


def render_jobs_for_image(services, sha256: str) -> None:
    return None


def handle_render(services, message: dict) -> None:
    return None


def fail_job(services, job_id: str, reason: str) -> None:
    return None


def fail_job(services, job_id: str, message: str) -> None:
    """Fail one job (e.g. its render message was dead-lettered); unknown or finished jobs are left."""
    canonical = jobs.parse_job_id(job_id or "")
    job = jobs.get(services.redis, canonical) if canonical else None
    if job is not None and not job.finished:
        jobs.fail(services.redis, job.job_id, job.sha256, message)
