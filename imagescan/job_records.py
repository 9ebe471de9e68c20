"""Job records of the jobs API, shared by the REST service and the worker.

A job asks for one image's analysis drawn on the image. Its record (``keys.job``) is a hash:
status, sha256 of the input, message (why it failed), output (sha256 of the rendered image in the
blob store), content_type of the output, created/updated (Unix seconds).

Lifecycle: pending -> processing -> completed | failed. A finished job's record is kept for
RETENTION_SECONDS (7 days), then Redis drops it (its id answers 404); a waiting job never expires. While a job waits for its image's
analysis, its id is in ``keys.image_jobs(sha256)``; the worker renders every waiting job when the
analysis ends. A job created after the analysis ended is rendered through a ``render`` work
message instead. Both paths may reach the same job; completing is idempotent.
``keys.image_job_history(sha256)`` lists every job of an image, finished ones too, for as long
as their records are kept, so that erasing the image also erases its jobs and their outputs.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from . import keys
from .redisclient import reply_text

PENDING = "pending"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
FINISHED = (COMPLETED, FAILED)
RETENTION_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Job:
    job_id: str
    status: str
    sha256: str = ""
    message: str = ""
    output: str = ""
    content_type: str = ""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def new_job_id() -> str:
    return str(uuid.uuid4())


def parse_job_id(text: str) -> str | None:
    """The canonical form of a job id, or None when the text is not a UUID."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, TypeError, AttributeError):
        return None


def get(redis, job_id: str) -> Job | None:
    fields = redis.hgetall(keys.job(job_id))
    if not fields:
        return None
    record = {reply_text(k): reply_text(v) for k, v in fields.items()}
    return Job(
        job_id=job_id,
        status=record.get("status", PENDING),
        sha256=record.get("sha256", ""),
        message=record.get("message", ""),
        output=record.get("output", ""),
        content_type=record.get("content_type", ""),
    )


def create(redis, job_id: str, sha256: str) -> None:
    """A pending job for an image, registered as waiting for that image's analysis.

    Two steps (the job's key and the image's keys are in different slots), the image's first:
    a crash between leaves an id waiting for a record that does not exist, which the worker
    drops (finishing a missing job only takes it off the image), never a pending job that
    nothing would render nor erase."""
    now = str(int(time.time()))
    pipe = redis.pipeline(transaction=True)
    pipe.sadd(keys.image_jobs(sha256), job_id)
    _remember(pipe, sha256, job_id)
    pipe.execute()
    redis.hset(keys.job(job_id), mapping={"status": PENDING, "sha256": sha256, "created": now, "updated": now})


def _remember(pipe, sha256: str, job_id: str) -> None:
    """In the image's job history, which outlives (by a little) every finished job it lists."""
    pipe.sadd(keys.image_job_history(sha256), job_id)
    pipe.expire(keys.image_job_history(sha256), RETENTION_SECONDS + 3600)


def discard(redis, job_id: str, sha256: str) -> None:
    """Forget a job entirely (its image was erased while the job was being made): the record
    first, so a crash leaves at most an id listed under an image, pointing at nothing."""
    redis.delete(keys.job(job_id))
    pipe = redis.pipeline(transaction=True)
    pipe.srem(keys.image_jobs(sha256), job_id)
    pipe.srem(keys.image_job_history(sha256), job_id)
    pipe.execute()


def create_failed(redis, job_id: str, message: str, sha256: str = "") -> None:
    """A job that failed before it could wait for anything (rejected or unqueueable upload).
    The image's history first, so that erasing the image finds the job whatever happens next."""
    now = str(int(time.time()))
    mapping = {"status": FAILED, "message": message, "created": now, "updated": now}
    if sha256:
        mapping["sha256"] = sha256
        pipe = redis.pipeline(transaction=True)
        pipe.srem(keys.image_jobs(sha256), job_id)
        _remember(pipe, sha256, job_id)
        pipe.execute()
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.job(job_id), mapping=mapping)
    pipe.expire(keys.job(job_id), RETENTION_SECONDS)
    pipe.execute()


def waiting_for(redis, sha256: str) -> list[str]:
    return sorted(reply_text(member) for member in redis.smembers(keys.image_jobs(sha256)))


# KEYS: job; ARGV: retention seconds ("" unless finishing), then field/value pairs.
# One step: a crash cannot leave a finished job that never expires.
_SET_IF_UNFINISHED = """
local status = redis.call('HGET', KEYS[1], 'status')
local unfinished = status and status ~= 'completed' and status ~= 'failed'
if unfinished then
  for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
end
return unfinished and 1 or 0
"""

# KEYS: the image's waiting set, the image's job history (one slot); ARGV: job id, retention seconds
_LEAVE_IMAGE = """
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  -- the history outlives (by a little) every finished job it lists
  redis.call('EXPIRE', KEYS[2], math.max(redis.call('TTL', KEYS[2]), tonumber(ARGV[2]) + 3600))
end
return 1
"""


def _update_unfinished(redis, job_id: str, sha256: str, **fields: str) -> bool:
    """Set fields of an unfinished job atomically; False when it is unknown or already finished.

    Finishing is two steps: the job's record (its slot), then the job leaves its image's
    waiting set (the image's slot). A crash between leaves a finished job still listed as
    waiting: the redelivered work, or the next analysis end, finishes it again, which changes
    nothing in the record and takes it off the list. Leaving also runs for a job already
    finished or unknown, which is what mends that."""
    fields["updated"] = str(int(time.time()))
    finishing = fields.get("status") in FINISHED
    flat = [item for pair in fields.items() for item in pair]
    retention = str(RETENTION_SECONDS) if finishing else ""
    changed = bool(redis.eval(_SET_IF_UNFINISHED, 1, keys.job(job_id), retention, *flat))
    if finishing and sha256:
        redis.eval(_LEAVE_IMAGE, 2, keys.image_jobs(sha256), keys.image_job_history(sha256), job_id,
                   RETENTION_SECONDS)
    return changed


def mark_processing(redis, job_id: str) -> bool:
    return _update_unfinished(redis, job_id, "", status=PROCESSING)


def complete(redis, job_id: str, sha256: str, output_sha256: str, content_type: str) -> bool:
    return _update_unfinished(
        redis, job_id, sha256,
        status=COMPLETED, output=output_sha256, content_type=content_type, message="",
    )


def fail(redis, job_id: str, sha256: str, message: str) -> bool:
    return _update_unfinished(redis, job_id, sha256, status=FAILED, message=message)
