"""The documents several routes answer with, as marshmallow schemas (described in /openapi.json).

A schema used by one route only lives next to that route. These describe; the views build the
bodies themselves (see rest.apidoc), and tests/integration/test_openapi_statuses.py checks
the bodies against these descriptions.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

STATUSES = ["queued", "processing", "done", "failed"]


class Document(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # open: a client must not break when a field is added


def described(field: fields.Field, description: str) -> fields.Field:
    field.metadata = {**field.metadata, "description": description}
    return field


class Error(Document):
    class Meta:
        description = "Every error, whatever the route"

    error = described(fields.String(required=True), "Why, in one sentence")
    status = described(fields.Integer(required=True), "The HTTP status again")


class Hash(Document):
    hash = fields.String(required=True)


class Box(Document):
    class Meta:
        description = "Pixels of the upright image; (x, y) is the top-left corner"

    x, y, w, h = fields.Integer(), fields.Integer(), fields.Integer(), fields.Integer()


class Candidate(Document):
    plate = fields.String()
    confidence = fields.Float()


class Plate(Candidate):
    plate = described(fields.String(), "Upper case, letters and digits only")
    confidence = fields.Float(validate=ma.validate.Range(0, 1))
    box = fields.Nested(Box)
    candidates = fields.List(fields.Nested(Candidate))


class Digests(Document):
    md5, sha224, sha256 = fields.String(), fields.String(), fields.String()


class Exif(Document):
    make = fields.String(allow_none=True)
    model = fields.String(allow_none=True)
    taken_at = fields.String(allow_none=True)


class Position(Document):
    latitude = fields.Float()
    longitude = fields.Float()


class Match(Document):
    sha256 = fields.String()
    distance = fields.Float()
    confidence = described(fields.Float(), "Probability that both faces are one person, from the distance "
                                           "(imagescan/faceconfidence.py; reliability table in the README)")
    names = fields.List(fields.String())


class Face(Document):
    box = fields.Nested(Box)
    matchable = described(fields.Boolean(), "Present and false on a face too small or blurred to be encoded "
                                            "reliably: listed, never matched")
    matches = described(fields.List(fields.Nested(Match)), "Faces of other images that match, best first")


class Analysis(Document):
    status = fields.String(validate=ma.validate.OneOf(STATUSES))
    digests = fields.Nested(Digests)
    names = described(fields.List(fields.String()),
                      "Filenames and URLs it was received under, first seen first: the 50 most recent "
                      "(all of them: /images/{digest}/names)")
    names_total = described(fields.Integer(), "How many names it has in all")
    size = fields.Integer()
    received_at = fields.DateTime()
    analyzed_at = fields.DateTime(allow_none=True)
    format = fields.String(allow_none=True)
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    exif = fields.Nested(Exif)
    geotag = fields.Nested(Position, allow_none=True)
    plates = fields.List(fields.Nested(Plate))
    faces = described(fields.List(fields.Nested(Face), allow_none=True),
                      "null for a key without the faces scope")
    error = described(fields.String(), "Why the analysis failed")


class JobAccepted(Document):
    job_id = fields.UUID(required=True)
    status = fields.String(required=True, validate=ma.validate.OneOf(["pending", "processing"]))
    location = fields.String(required=True, metadata={"example": "/jobs/6f1c…"})
