"""Jobs API: POST an image, poll the job, fetch the image with its analysis drawn on it.

- `POST /jobs` (multipart field `image`) -> 202, `Location: /jobs/<id>`,
  `{"job_id", "status", "location"}`. When the image cannot be queued (Redis or RabbitMQ down)
  the job is recorded as failed (when Redis allows) and the answer is 500 with the same
  Location; a rejected upload (not an image, corrupt, too big) keeps its 4xx status, also with
  the Location of a job recorded as failed with the reason. A request without the `image`
  field is a plain 400 (no job).
- `GET /jobs/<id>` -> 200 pending|processing|failed (+ `message`), 201 completed with
  `Location: /jobs/<id>/output`; 404 for unknown or malformed ids.
- `GET /jobs/<id>/output` -> the image (image/jpeg for JPEG sources, else image/png);
  202 + Location of the status while unfinished; 409 when the job failed; 404 unknown.
"""

from __future__ import annotations

import logging

import marshmallow as ma
import redis
from flask import Response, g, jsonify, url_for

from imagescan import job_records, topology
from imagescan.broker import BrokerUnavailable
from imagescan.store import DONE, FAILED, PROCESSING

from ..apidoc import BAD_IMAGE, LOCATION, STORAGE_DOWN, Blueprint, ImageUpload, error, files, path_parameter
from ..errors import ApiError, error_response, unavailable
from ..ingest import accept_image
from ..schemas import Document, JobAccepted
from ..services import current

blueprint = Blueprint("jobs", __name__, description="Draw an image's analysis on it, asynchronously")
log = logging.getLogger("imagescan.rest.jobs")
JOB_ID = path_parameter("job_id", "The job's UUID")
UNKNOWN_JOB = {404: error("No such job (also for ids that are not UUIDs)")}


class Job(Document):
    job_id = ma.fields.UUID(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(
        ["pending", "processing", "completed", "failed"]))
    image = ma.fields.String(allow_none=True, metadata={"description": "SHA-256 of the input"})
    message = ma.fields.String(metadata={"description": "Why the job failed"})
    output = ma.fields.String(metadata={"description": "Location of the output (completed)"})
    location = ma.fields.String(metadata={"description": "Same as the Location header"})


def _status_location(job_id: str) -> str:
    return url_for("jobs.job_status", job_id=job_id)


def _output_location(job_id: str) -> str:
    return url_for("jobs.job_output", job_id=job_id)


def _record_failed_job(job_id: str, message: str, sha256: str = "") -> None:
    """Best effort: with Redis down the job cannot be recorded, and the answer says why anyway."""
    try:
        job_records.create_failed(current().redis, job_id, message, sha256)
    except redis.RedisError as exc:
        log.warning("job %s not recorded: %r", job_id, exc)


def _failed_to_queue(job_id: str, error: ApiError, sha256: str = ""):
    _record_failed_job(job_id, error.message, sha256)
    status = error.status if 400 <= error.status < 500 else 500
    location = _status_location(job_id)
    headers = {**error.headers, "Location": location}
    return error_response(status, error.message, headers, job_id=job_id, location=location)


@blueprint.post("/jobs")
@blueprint.response(202, JobAccepted, description="Queued; poll the Location", headers=LOCATION)
@blueprint.doc(responses={
    **{code: {**answer, "headers": LOCATION} for code, answer in BAD_IMAGE.items() if code != 503},
    500: error("The job could not be queued; the job at Location says why", headers=LOCATION),
})
@blueprint.arguments(ImageUpload, location="files")
def create_job(form: dict):
    """Draw the image's analysis on it, asynchronously

    A rejected upload keeps its 4xx status, with the Location of a job recorded as failed
    with the reason; when the image cannot be queued (Redis or RabbitMQ down) the answer is
    500 with that Location.
    """
    upload = form["image"]
    job_id = job_records.new_job_id()
    try:
        digests = accept_image(upload.read(), upload.filename or None)
    except ApiError as error:
        return _failed_to_queue(job_id, error)
    services = current()
    try:
        job_records.create(services.redis, job_id, digests.sha256)
        # Read after registering the job: if the analysis ends in between, the worker's
        # hook sees the job or this read sees `done` (maybe both; rendering is idempotent).
        # Likewise an erasure meanwhile either erased the job or is seen here.
        # A failed image is not analysed again: the render message fails the job with why.
        status = services.store.status(digests.sha256)
        if status is None:
            job_records.discard(services.redis, job_id, digests.sha256)
            raise ApiError(404, "the image was erased while the job was being created")
        if status in (DONE, FAILED):
            services.publisher.publish(
                topology.RENDER, request_id=g.get("request_id", ""),
                job_id=job_id, sha256=digests.sha256,
            )
    except redis.RedisError:
        return _failed_to_queue(job_id, unavailable("storage"), digests.sha256)
    except BrokerUnavailable:
        return _failed_to_queue(job_id, unavailable("the work queue"), digests.sha256)
    location = _status_location(job_id)
    response = jsonify({"job_id": job_id, "status": job_records.PENDING, "location": location})
    response.status_code = 202
    response.headers["Location"] = location
    return response


def _load_job(job_id: str) -> job_records.Job:
    canonical = job_records.parse_job_id(job_id)
    try:
        job = job_records.get(current().redis, canonical) if canonical else None
    except redis.RedisError:
        raise unavailable("storage") from None
    if job is None:
        raise ApiError(404, f"no job {job_id!r}")
    return job


def _visible_status(job: job_records.Job) -> str:
    """A pending job whose image is being analysed is already processing, as the client sees it."""
    if job.status != job_records.PENDING or not job.sha256:
        return job.status
    try:
        analysing = current().store.status(job.sha256) == PROCESSING
    except redis.RedisError:
        analysing = False  # the job record was just read; its own status is still true
    return job_records.PROCESSING if analysing else job.status


@blueprint.get("/jobs/<job_id>", parameters=[JOB_ID])
@blueprint.response(200, Job, description="pending, processing or failed (with message)")
@blueprint.alt_response(201, schema=Job, description="completed; Location is the output", headers=LOCATION,
                        success=True)
@blueprint.doc(responses={**UNKNOWN_JOB, **STORAGE_DOWN})
def job_status(job_id: str):
    """A job's status"""
    job = _load_job(job_id)
    body = {"job_id": job.job_id, "status": _visible_status(job), "image": job.sha256 or None}
    if job.status == job_records.FAILED:
        body["message"] = job.message
    if job.status != job_records.COMPLETED:
        return jsonify(body), 200
    location = _output_location(job.job_id)
    body["output"] = location
    body["location"] = location
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


@blueprint.get("/jobs/<job_id>/output", parameters=[JOB_ID])
@blueprint.doc(responses={
    200: files("JPEG for JPEG inputs, PNG otherwise", ("image/jpeg", "image/png")),
    202: {"description": "Not finished; Location is the status", "headers": LOCATION,
          "content": {"application/json": {"schema": JobAccepted}}},
    **UNKNOWN_JOB,
    409: error("The job failed; `error` says why"),
    500: error("The job's output is missing from the blob store"),
    **STORAGE_DOWN,
})
def job_output(job_id: str):
    """The image with plates (box and text) and faces (box) drawn"""
    job = _load_job(job_id)
    if job.status == job_records.FAILED:
        raise ApiError(409, f"the job failed: {job.message}", job_id=job.job_id)
    if job.status != job_records.COMPLETED:
        location = _status_location(job.job_id)
        response = jsonify({"job_id": job.job_id, "status": _visible_status(job), "location": location})
        response.status_code = 202
        response.headers["Location"] = location
        response.headers["Retry-After"] = "1"
        return response
    try:
        stream = current().blobs.open(job.output)  # streamed: never a whole copy in memory
    except (redis.RedisError, OSError):
        raise unavailable("storage") from None
    if stream is None:
        log.error("output %s of job %s is missing from the blob store", job.output, job.job_id,
                  extra={"job_id": job.job_id, "sha256": job.sha256})
        raise ApiError(500, "the job's output is missing from the blob store", job_id=job.job_id)
    response = Response(stream, mimetype=job.content_type or "application/octet-stream")
    response.headers["Content-Length"] = str(stream.length)
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    return response
