"""The OpenAPI 3.0 description of every route the REST service answers (served at /openapi.json).

Written by hand, next to the code it describes; tests/integration/test_openapi.py checks that
every Flask route appears here with its methods, so a new route without a description fails CI.
"""

from __future__ import annotations

import copy

from imagescan import __version__, imaging, transforms

from . import openapi_console

_REF = "#/components/schemas/"


def _ref(name: str) -> dict:
    return {"$ref": _REF + name}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, retry_after: bool = False) -> dict:
    response = _json(_ref("Error"), description)
    if retry_after:
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return response


def _path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


_DIGEST = "MD5, SHA-224 or SHA-256 (hex) of the image"
# Uploads that are part of a bulk load say so; they are analysed after interactive work.
_LANE = [
    {"name": "lane", "in": "query", "required": False, "schema": {"type": "string", "enum": ["bulk"]},
     "description": "`bulk`: analyse after single uploads and jobs (or header X-Imagescan-Lane: bulk)"},
    {"name": "X-Imagescan-Lane", "in": "header", "required": False,
     "schema": {"type": "string", "enum": ["bulk"]}, "description": "Same as ?lane=bulk"},
]
_IMAGE_TYPES = tuple(imaging.MIME_TYPES.values())  # the formats the service reads
_BINARY = {"type": "string", "format": "binary"}

BAD_IMAGE = {
    "400": _error("Empty, corrupt or truncated image, or a malformed request"),
    "413": _error("Upload larger than MAX_UPLOAD_MB or image over MAX_IMAGE_PIXELS"),
    "415": _error("Not an image in a format the service reads"),
    "503": _error("Redis or RabbitMQ unavailable; nothing was queued", retry_after=True),
}
NEEDS_KEY = {
    "401": _error("x-api-key present but wrong"),
    "403": _error("x-api-key missing"),
    "429": _error("Too many wrong keys from this address", retry_after=True),
    "503": _error("No API key configured on the server, or storage unavailable", retry_after=True),
}
NOT_FOUND = {"404": _error("No such image")}
RAW_IMAGE_BODY = {
    "required": True,
    "description": "The image bytes; the Content-Type header is not trusted (the bytes are sniffed)",
    "content": {"application/octet-stream": {"schema": _BINARY},
                **{mime: {"schema": _BINARY} for mime in _IMAGE_TYPES}},
}


def _multipart(field: str, description: str, repeated: bool = False) -> dict:
    schema = {"type": "array", "items": _BINARY} if repeated else _BINARY
    return {
        "required": True,
        "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": [field],
                       "properties": {field: {**schema, "description": description}}},
        }},
    }


def _image_response(description: str, types=_IMAGE_TYPES) -> dict:
    return {"description": description, "content": {mime: {"schema": _BINARY} for mime in types}}


SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error", "status"],
        "description": "Every error, whatever the route",
        "properties": {"error": {"type": "string", "description": "Why, in one sentence"},
                       "status": {"type": "integer", "description": "The HTTP status again"}},
        "additionalProperties": True,
    },
    "Hash": {"type": "object", "required": ["hash"], "properties": {"hash": {"type": "string"}}},
    "Box": {
        "type": "object", "description": "Pixels of the upright image; (x, y) is the top-left corner",
        "properties": {k: {"type": "integer"} for k in ("x", "y", "w", "h")},
    },
    "Plate": {
        "type": "object",
        "properties": {
            "plate": {"type": "string", "description": "Upper case, letters and digits only"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "box": _ref("Box"),
            "candidates": {"type": "array", "items": {"type": "object", "properties": {
                "plate": {"type": "string"}, "confidence": {"type": "number"}}}},
        },
    },
    "PlateLocation": {
        "type": "object",
        "properties": {"license": {"type": "string"}, "confidence": {"type": "number"},
                       "latitude": {"type": "number"}, "longitude": {"type": "number"}},
    },
    "Analysis": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["queued", "processing", "done", "failed"]},
            "digests": {"type": "object", "properties": {
                k: {"type": "string"} for k in ("md5", "sha224", "sha256")}},
            "names": {"type": "array", "items": {"type": "string"},
                      "description": "Filenames and URLs it was received under, first seen first: "
                                     "the 50 most recent (all of them: /images/{digest}/names)"},
            "names_total": {"type": "integer", "description": "How many names it has in all"},
            "size": {"type": "integer"},
            "received_at": {"type": "string", "format": "date-time"},
            "analyzed_at": {"type": "string", "format": "date-time", "nullable": True},
            "format": {"type": "string", "nullable": True},
            "width": {"type": "integer", "nullable": True},
            "height": {"type": "integer", "nullable": True},
            "exif": {"type": "object", "properties": {
                "make": {"type": "string", "nullable": True},
                "model": {"type": "string", "nullable": True},
                "taken_at": {"type": "string", "nullable": True}}},
            "geotag": {"type": "object", "nullable": True, "properties": {
                "latitude": {"type": "number"}, "longitude": {"type": "number"}}},
            "plates": {"type": "array", "items": _ref("Plate")},
            "faces": {"type": "array", "items": {"type": "object", "properties": {"box": _ref("Box")}}},
            "error": {"type": "string", "description": "Why the analysis failed"},
        },
    },
    "JobAccepted": {
        "type": "object", "required": ["job_id", "status", "location"],
        "properties": {"job_id": {"type": "string", "format": "uuid"},
                       "status": {"type": "string", "enum": ["pending"]},
                       "location": {"type": "string", "example": "/jobs/6f1c…"}},
    },
    "Job": {
        "type": "object", "required": ["job_id", "status"],
        "properties": {
            "job_id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": ["pending", "processing", "completed", "failed"]},
            "image": {"type": "string", "nullable": True, "description": "SHA-256 of the input"},
            "message": {"type": "string", "description": "Why the job failed"},
            "output": {"type": "string", "description": "Location of the output (completed)"},
            "location": {"type": "string", "description": "Same as the Location header"},
        },
    },
    "UploadLink": {
        "type": "object", "required": ["upload_id"],
        "properties": {"upload_id": {"type": "string", "format": "uuid"},
                       "expiry": {"type": "integer", "description": "Seconds it stays valid"}},
    },
    "Stats": {
        "type": "object",
        "required": ["Image Upload Frequency Per Day (last 30 days)", "Most Popular Image Format",
                     "Top 10 Popular Camera Models"],
        "properties": {
            "Image Upload Frequency Per Day (last 30 days)": {
                "type": "object", "additionalProperties": {"type": "integer"},
                "description": "UTC day (YYYY-MM-DD) -> new images; days without uploads are left out",
                "example": {"2024-05-06": 3}},
            "Most Popular Image Format": {"type": "string", "nullable": True, "example": "JPEG"},
            "Top 10 Popular Camera Models": {"type": "array", "items": {"type": "string"},
                                             "example": ["Google - Pixel 6a"]},
        },
        "additionalProperties": False,
    },
}


def _plates_paths() -> dict:
    upload = {
        "tags": ["plates"], "summary": "Scan an image for licence plates (PUT or POST)",
        "parameters": [_path_param("filename", "Name recorded for the image"), *_LANE],
        "requestBody": RAW_IMAGE_BODY,
        "responses": {"200": _json(_ref("Hash"), "Accepted; `hash` is the MD5"), **BAD_IMAGE},
    }
    return {
        "/image/{filename}": {"put": upload, "post": copy.deepcopy(upload)},
        "/hash/{checksum}": {"get": {
            "tags": ["plates"], "summary": "Plates and location of a geotagged image",
            "parameters": [_path_param("checksum", _DIGEST)],
            "responses": {"200": _json({"type": "array", "items": _ref("PlateLocation")},
                                       "[] for unknown images and images without GPS EXIF")},
        }},
        "/license/{license}": {"get": {
            "tags": ["plates"], "summary": "MD5s of the images showing a plate",
            "parameters": [
                _path_param("license", "Plate; compared upper-cased, letters and digits only"),
                {"name": "fuzzy", "in": "query", "required": False,
                 "description": "N > 0: also plates up to N edits away, nearest first; an edit is a "
                                "lookalike swap (O/0, I/1, B/8, S/5, Z/2, G/6) or a missing or extra "
                                "character (7B9SJLD finds 789SJL with fuzzy=2)",
                 "schema": {"type": "integer", "enum": [0, 1, 2], "default": 0}},
            ],
            "responses": {"200": _json({"type": "array", "items": {"type": "string"}}, "MD5s; [] when none"),
                          "400": _error("fuzzy is not 0, 1 or 2")},
        }},
    }


def _faces_paths() -> dict:
    return {
        "/scan/image/{filename}": {"post": {
            "tags": ["faces"], "summary": "Scan an image for faces",
            "parameters": [_path_param("filename", "Name recorded for the image"), *_LANE],
            "requestBody": RAW_IMAGE_BODY,
            "responses": {"200": _json(_ref("Hash"), "Accepted; `hash` is the SHA-224"), **BAD_IMAGE},
        }},
        "/scan/url": {"post": {
            "tags": ["faces"], "summary": "Fetch an image by URL and scan it (once per URL)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["url"],
                "properties": {"url": {"type": "string", "format": "uri"}}}}}},
            "responses": {
                "200": _json(_ref("Hash"), "Accepted (or seen before); `hash` is the SHA-224"),
                **BAD_IMAGE,
                "403": _error("The URL points at a private, loopback or metadata address"),
                "502": _error("The URL could not be fetched (upstream error, TLS failure)"),
                "504": _error("Fetching the URL timed out"),
                "503": _error("Redis or RabbitMQ unavailable, or URL_FETCH_CONCURRENCY fetches already "
                              "in progress; nothing was queued", retry_after=True),
            },
        }},
        "/match/{digest}": {"get": {
            "tags": ["faces"], "summary": "Names and URLs of other images with a matching face",
            "parameters": [_path_param("digest", _DIGEST)],
            "responses": {"200": _json({"type": "array", "items": {"type": "string"}},
                                       "[] for unknown images and images without faces")},
        }},
    }


def _images_paths() -> dict:
    return {
        "/images/{digest}": {"get": {
            "tags": ["images"], "summary": "Everything known about an image",
            "parameters": [_path_param("digest", _DIGEST)],
            "responses": {"200": _json(_ref("Analysis"), "The image's record (`faces` is null "
                                                           "for a key without the faces scope)"),
                          **NOT_FOUND},
        }, "delete": {
            "tags": ["images"], "summary": "Erase the image and everything made from it",
            "description": "Original, record, names, plates, faces, matches, transforms, jobs and "
                           "their outputs. Needs the admin scope (AUTH=keys) or an API_KEY (AUTH=seed).",
            "security": [{"ApiKey": []}],
            "parameters": [_path_param("digest", _DIGEST)],
            "responses": {"200": _json({"type": "object"}, "Erased (or already erased)"),
                          **NEEDS_KEY, **NOT_FOUND},
        }},
        "/images/{digest}/names": {"get": {
            "tags": ["images"], "summary": "Every name of an image, a page at a time, first seen first",
            "parameters": [
                _path_param("digest", _DIGEST),
                {"name": "offset", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
            ],
            "responses": {"200": _json({"type": "object", "properties": {
                "names": {"type": "array", "items": {"type": "string"}},
                "total": {"type": "integer"}, "offset": {"type": "integer"},
                "next": {"type": "string", "nullable": True,
                         "description": "Path of the next page; null on the last one"}}},
                "A page of names"),
                "400": _error("offset or limit is not a number in range"), **NOT_FOUND},
        }},
        "/healthz": {"get": {
            "tags": ["operations"], "summary": "Liveness: the process answers",
            "responses": {"200": _json({"type": "object"}, "Alive")},
        }},
        "/readyz": {"get": {
            "tags": ["operations"],
            "summary": "Readiness: Redis reachable (RabbitMQ's state is reported, uploads answer 503 without it)",
            "responses": {"200": _json({"type": "object"}, "Ready (status `degraded` while RabbitMQ is away)"),
                          "503": _json({"type": "object"}, "Redis is unreachable")},
        }},
        "/metrics": {"get": {
            "tags": ["operations"], "summary": "Prometheus metrics (text exposition format)",
            "responses": {"200": {"description": "Metrics",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
    }


def _jobs_paths() -> dict:
    job_id = _path_param("job_id", "The job's UUID")
    location = {"Location": {"schema": {"type": "string"}}}
    unknown_job = {"404": _error("No such job (also for ids that are not UUIDs)")}
    return {
        "/jobs": {"post": {
            "tags": ["jobs"], "summary": "Draw the image's analysis on it, asynchronously",
            "requestBody": _multipart("image", "The image"),
            "responses": {
                "202": {**_json(_ref("JobAccepted"), "Queued; poll the Location"), "headers": location},
                **{code: {**response, "headers": location} for code, response in BAD_IMAGE.items()
                   if code != "503"},
                "500": {**_error("The job could not be queued; the job at Location says why"),
                        "headers": location},
            },
        }},
        "/jobs/{job_id}": {"get": {
            "tags": ["jobs"], "summary": "A job's status",
            "parameters": [job_id],
            "responses": {
                "200": _json(_ref("Job"), "pending, processing or failed (with message)"),
                "201": {**_json(_ref("Job"), "completed; Location is the output"), "headers": location},
                **unknown_job,
            },
        }},
        "/jobs/{job_id}/output": {"get": {
            "tags": ["jobs"], "summary": "The image with plates (box and text) and faces (box) drawn",
            "parameters": [job_id],
            "responses": {
                "200": _image_response("JPEG for JPEG inputs, PNG otherwise", ("image/jpeg", "image/png")),
                "202": {**_json(_ref("JobAccepted"), "Not finished; Location is the status"),
                        "headers": location},
                **unknown_job,
                "409": _error("The job failed; `error` says why"),
            },
        }},
    }


def _transform_paths() -> dict:
    paths = {
        "/upload_file": {"post": {
            "tags": ["prog-image"], "summary": "Upload an image; the answer is its id (SHA-256)",
            "requestBody": _multipart("image", "The image"),
            "responses": {
                "200": {"description": "The image id",
                        "content": {"text/plain": {"schema": {"type": "string"}},
                                    "application/json": {"schema": {
                                        "type": "object", "properties": {"image_id": {"type": "string"}}}}}},
                **BAD_IMAGE,
            },
        }},
    }
    summaries = {
        "jpeg": "As JPEG (quality 95; transparency composited over white)",
        "png": "As PNG (lossless)",
        "grayscale": "Pillow convert('L'); JPEG for JPEG sources, PNG otherwise",
        "mirror": "Flipped left-right; JPEG for JPEG sources, PNG otherwise",
    }
    for operation in transforms.OPERATIONS:
        paths[f"/{{image_id}}/{operation}"] = {"get": {
            "tags": ["prog-image"], "summary": summaries[operation],
            "parameters": [_path_param("image_id", _DIGEST)],
            "responses": {
                "200": _image_response("The transformed image", ("image/jpeg", "image/png")),
                **NOT_FOUND,
                "413": _error("Image over MAX_IMAGE_PIXELS"),
                "422": _error("The stored original cannot be decoded"),
                "503": _error("Busy or storage unavailable", retry_after=True),
            },
        }}
    return paths


def _image_service_paths() -> dict:
    secured = [{"ApiKey": []}]
    return {
        "/api/generate-upload-link": {"post": {
            "tags": ["image service"], "summary": "A temporary upload id", "security": secured,
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"expiry": {
                    "type": "integer", "minimum": 1, "maximum": 86400, "default": 60,
                    "description": "Seconds the upload id stays valid"}}}}}},
            "responses": {"200": _json(_ref("UploadLink"), "The upload id"),
                          "400": _error("Body is not JSON or expiry is out of range"), **NEEDS_KEY},
        }},
        "/api/upload-images/{upload_id}": {"post": {
            "tags": ["image service"], "summary": "Upload images with an upload id", "security": secured,
            "parameters": [_path_param("upload_id", "From /api/generate-upload-link")],
            "requestBody": _multipart("image_files", "One or more images", repeated=True),
            "responses": {
                "200": _json({"type": "object", "additionalProperties": {"type": "string"}},
                             "filename -> SHA-256; an image sent again keeps its first id"),
                **BAD_IMAGE, **NEEDS_KEY,
                "404": _error("Unknown or expired upload id"),
            },
        }},
        "/api/images/{image_id}": {"get": {
            "tags": ["image service"], "summary": "The original image (no key needed)",
            "description": "Streamed from the blob store; ETag is the SHA-256. One `Range` per request "
                           "(`bytes=0-99`, `bytes=-500`); `HEAD` gives the headers alone.",
            "parameters": [_path_param("image_id", _DIGEST),
                           {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"}}],
            "responses": {"200": _image_response("The bytes as uploaded"),
                          "206": _image_response("The requested byte range (Content-Range)"),
                          "304": {"description": "Not modified"}, **NOT_FOUND,
                          "416": _error("The range is outside the image"),
                          "503": _error("The blob store or Redis is unavailable", retry_after=True)},
        }},
        "/api/stats": {"get": {
            "tags": ["image service"], "summary": "Upload and image statistics", "security": secured,
            "responses": {"200": _json(_ref("Stats"), "Statistics"), **NEEDS_KEY},
        }},
    }


def _docs_paths() -> dict:
    return {
        "/openapi.json": {"get": {
            "tags": ["docs"], "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0 document")},
        }},
        "/docs": {"get": {
            "tags": ["docs"], "summary": "Interactive documentation (Swagger UI)",
            "responses": {"200": {"description": "HTML page", "content": {"text/html": {}}}},
        }},
        "/docs/{filename}": {"get": {
            "tags": ["docs"], "summary": "Swagger UI's static files",
            "parameters": [_path_param("filename", "File of the Swagger UI distribution")],
            "responses": {"200": {"description": "The file"}, "404": _error("No such file")},
        }},
    }


def _operation_ids(paths: dict) -> None:
    """Unique, readable operationIds (Swagger UI shows them; client generators need them)."""
    for path, operations in paths.items():
        words = [w.strip("{}").replace("-", "_").replace(".", "_") for w in path.split("/") if w]
        for method, operation in operations.items():
            operation["operationId"] = "_".join([method, *words]) or method


def build_spec(version: str = __version__) -> dict:
    paths = {}
    for part in (_plates_paths, _faces_paths, _images_paths, _jobs_paths, _transform_paths,
                 _image_service_paths, _docs_paths):
        paths.update(copy.deepcopy(part()))
    paths.update(copy.deepcopy(openapi_console.paths(NEEDS_KEY, NOT_FOUND)))
    _operation_ids(paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "imagescan",
            "version": version,
            "description": "Licence plates, faces and EXIF of uploaded images, plus the jobs, "
                           "prog-image and image-service APIs. Every route taking an image digest "
                           "accepts its MD5, SHA-224 or SHA-256. Every error is "
                           '`{"error": str, "status": int}`. With AUTH=keys every route but '
                           "/healthz, /readyz and /metrics needs an `x-api-key` with the route's "
                           "scope (upload, read, faces or admin).",
        },
        "tags": [{"name": n} for n in ("plates", "faces", "images", "jobs", "prog-image",
                                        "image service", "operations", "docs", "console")],
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy({**SCHEMAS, **openapi_console.SCHEMAS}),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
    }
