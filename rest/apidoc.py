"""Routes that describe themselves: the Blueprint every API family uses, its request parser,
and the pieces of description the routes share.

Each route declares what it reads (`@blueprint.arguments(Schema, location=...)`: parsed and
validated by webargs before the view runs) and what it answers (`@blueprint.response`,
`@blueprint.doc(responses=...)`); flask-smorest turns both into `/openapi.json` (rest.openapi).
The views still build their own responses, so every body stays exactly what it was.
"""

from __future__ import annotations

from typing import ClassVar

import marshmallow as ma
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.fields import Upload
from webargs import core
from webargs.flaskparser import FlaskParser

from imagescan import imaging

from .errors import ApiError
from .schemas import Error

_LOCATIONS = frozenset({"json", "query", "querystring", "files", "form", "headers", "view_args"})


def sentence(messages) -> str:
    """marshmallow's nested messages as one sentence: `{"query": {"limit": [...]}}` -> `limit: ...`.
    A message that names its field already (the routes' own wording) is kept as it is."""
    found: list[str] = []

    def walk(node, name: str | None) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                named = isinstance(key, str) and key not in _LOCATIONS and key != "_schema"
                walk(value, key if named else name)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item, name)
        else:
            text = str(node)
            found.append(text if name is None or name in text else f"{name}: {text}")

    walk(messages, None)
    return "; ".join(dict.fromkeys(found)) or "the request is malformed"


class RequestParser(FlaskParser):
    """webargs' Flask parser, as this API has always parsed requests."""

    # A malformed request has always been answered 400 here (webargs' default is 422).
    DEFAULT_VALIDATION_STATUS = 400
    # Fields a route does not know are ignored in bodies too, as they always were.
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "json": ma.EXCLUDE}

    def load_json(self, req, schema):
        """The body as JSON whatever its Content-Type (clients send form or no type at all);
        an empty body is no argument at all, so every default applies."""
        raw = req.get_data(cache=True)
        if not raw.strip():
            return core.missing
        try:
            return core.parse_json(raw)
        except ValueError:  # JSONDecodeError, and undecodable bytes
            raise ma.ValidationError(schema.error_messages["type"]) from None

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        # Through the app's one error renderer, like every other refusal.
        raise ApiError(error_status_code or self.DEFAULT_VALIDATION_STATUS, sentence(error.messages),
                       headers=dict(error_headers or {}))


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = RequestParser()

    def response(self, status_code, schema=None, **options):
        """flask-smorest's `response`, for the description alone.

        Its wrapper serializes what a view returns through the schema; every view here builds
        its own Response (jsonify, send_file, ...), which the wrapper only passed through, at
        about 20 microseconds and an extra coroutine check a request. The view that runs stays
        the function itself (Flask turns a returned dict or tuple into JSON the same way);
        flask-smorest reads the description from the `_apidoc` attribute filled in here.
        """
        document = super().response(status_code, schema, **options)

        def decorator(view):
            view._apidoc = document(view)._apidoc  # the view's description, with this answer added
            return view

        return decorator


class WholeNumber(ma.fields.Integer):
    """An integer written with decimal digits only: no sign, no point, no boolean.
    `spaces`: surrounding spaces allowed in a string (JSON bodies were always stripped)."""

    def __init__(self, *, spaces: bool = False, **kwargs):
        super().__init__(strict=True, **kwargs)
        self.spaces = spaces

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            digits = value.strip() if self.spaces else value
            if not digits.isdecimal():
                raise self.make_error("invalid")
            value = int(digits)
        return super()._deserialize(value, attr, data, **kwargs)


def whole_number(name: str, low: int, high: int, default: int, **options) -> WholeNumber:
    """A bounded whole number whose every refusal says the same thing."""
    message = f"{name} must be a whole number from {low} to {high}"
    return WholeNumber(load_default=default, validate=ma.validate.Range(low, high, error=message),
                       error_messages={"invalid": message}, **options)


# -- pieces of description the routes share ---------------------------------------------------

BINARY = {"type": "string", "format": "binary"}
IMAGE_TYPES = tuple(imaging.MIME_TYPES.values())  # the formats the service reads
DIGEST = "MD5, SHA-224 or SHA-256 (hex) of the image"


def path_parameter(name: str, description: str) -> dict:
    return {"in": "path", "name": name, "description": description}


def error(description: str, *, retry_after: bool = False, headers: dict | None = None) -> dict:
    """An error answer: always the Error document."""
    response = {"description": description, "content": {"application/json": {"schema": Error}}}
    if retry_after:
        headers = {**(headers or {}), "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    if headers:
        response["headers"] = headers
    return response


def files(description: str, types=IMAGE_TYPES) -> dict:
    """A success answer made of bytes in one of `types`."""
    return {"description": description, "content": {mime: {"schema": BINARY} for mime in types}}


LOCATION = {"Location": {"schema": {"type": "string"}}}
NOT_FOUND = {404: error("No such image")}
# Any route that reads the store answers this while Redis (or the blob store) is away.
STORAGE_DOWN = {503: error("Redis or the blob store is unavailable", retry_after=True)}
BAD_IMAGE = {
    400: error("Empty, corrupt or truncated image, or a malformed request"),
    413: error("Upload larger than MAX_UPLOAD_MB or image over MAX_IMAGE_PIXELS"),
    415: error("Not an image in a format the service reads"),
    503: error("Redis or RabbitMQ unavailable; nothing was queued", retry_after=True),
}
NEEDS_KEY = {
    "security": [{"ApiKey": []}],
    "responses": {
        401: error("x-api-key present but wrong"),
        403: error("x-api-key missing"),
        429: error("Too many wrong keys from this address", retry_after=True),
        503: error("No API key configured on the server, or storage unavailable", retry_after=True),
    },
}
RAW_IMAGE_BODY = {
    "required": True,
    "description": "The image bytes; the Content-Type header is not trusted (the bytes are sniffed)",
    "content": {"application/octet-stream": {"schema": BINARY}, **{mime: {"schema": BINARY} for mime in IMAGE_TYPES}},
}


class Lane(ma.Schema):
    """How an upload that is part of a bulk load says so (read by rest.ingest, never refused)."""

    lane = ma.fields.String(validate=ma.validate.OneOf(["bulk"]), metadata={
        "description": "`bulk`: analyse after single uploads and jobs (or header X-Imagescan-Lane: bulk)"})


class LaneHeader(ma.Schema):
    lane = ma.fields.String(data_key="X-Imagescan-Lane", validate=ma.validate.OneOf(["bulk"]),
                            metadata={"description": "Same as ?lane=bulk"})


class ImageUpload(ma.Schema):
    """One image as the multipart form field `image` (POST /jobs, POST /upload_file)."""

    image = Upload(required=True, metadata={"description": "The image"},
                   error_messages={"required": "send the image as the multipart form field 'image'"})


# An upload of raw bytes (PUT /image, POST /scan/image): described, not parsed here. The bytes are
# judged by rest.ingest, and the lane is read only when the image is queued.
RAW_UPLOAD = {"parameters": [{"in": "query", "schema": Lane}, {"in": "header", "schema": LaneHeader}],
              "requestBody": RAW_IMAGE_BODY, "responses": BAD_IMAGE}
