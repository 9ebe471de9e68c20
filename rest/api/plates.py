"""The plates API (seeds/1-plates-api.md): upload by filename, plates by hash, hashes by plate."""

from __future__ import annotations

from typing import ClassVar

import marshmallow as ma
from flask import jsonify, request

from ..apidoc import DIGEST, RAW_UPLOAD, STORAGE_DOWN, Blueprint, path_parameter
from ..ingest import accept_image
from ..schemas import Document, Hash
from ..services import current

blueprint = Blueprint("plates", __name__, description="Licence plates: upload by filename, search by plate")
MAX_FUZZINESS = 2
STRINGS = {"type": "array", "items": {"type": "string"}}


class PlateLocation(Document):
    license = ma.fields.String()
    confidence = ma.fields.Float()
    latitude = ma.fields.Float()
    longitude = ma.fields.Float()


@blueprint.route("/image/<path:filename>", methods=["PUT", "POST"],
                 parameters=[path_parameter("filename", "Name recorded for the image")])
@blueprint.response(200, Hash, description="Accepted; `hash` is the MD5")
@blueprint.doc(**RAW_UPLOAD)
def upload_image(filename: str):
    """Scan an image for licence plates (PUT or POST)"""
    # Clients send any content type (the handout always says image/png): the bytes decide.
    digests = accept_image(request.get_data(cache=False), filename)
    return jsonify({"hash": digests.md5})


@blueprint.get("/hash/<checksum>", parameters=[path_parameter("checksum", DIGEST)])
@blueprint.response(200, PlateLocation(many=True), description="[] for unknown images and images without GPS EXIF")
@blueprint.doc(responses=STORAGE_DOWN)
def plates_of_image(checksum: str):
    """Plates and location of a geotagged image"""
    store = current().store
    sha256 = store.resolve(checksum)
    return jsonify(store.plates_with_location(sha256) if sha256 else [])


class Fuzziness(ma.fields.Integer):
    """0 (exact), 1 or 2 lookalike/missing-character edits; also false/no and true/yes."""

    LEVELS: ClassVar = {"0": 0, "false": 0, "no": 0, "1": 1, "true": 1, "yes": 1, "2": 2}

    def _deserialize(self, value, attr, data, **kwargs):
        if str(value).lower() not in self.LEVELS:
            raise self.make_error("invalid")
        return self.LEVELS[str(value).lower()]


class PlateSearch(ma.Schema):
    fuzzy = Fuzziness(load_default=0, validate=ma.validate.OneOf(range(MAX_FUZZINESS + 1)),
                      error_messages={"invalid": f"fuzzy must be 0, 1 or {MAX_FUZZINESS}"}, metadata={
                          "description": "N > 0: also plates up to N edits away, nearest first; an edit is a "
                                         "lookalike swap (O/0, I/1, B/8, S/5, Z/2, G/6) or a missing or extra "
                                         "character (7B9SJLD finds 789SJL with fuzzy=2)"})


@blueprint.get("/license/<license>",
               parameters=[path_parameter("license", "Plate; compared upper-cased, letters and digits only")])
@blueprint.response(200, STRINGS, description="MD5s; [] when none")
@blueprint.doc(responses=STORAGE_DOWN)
@blueprint.arguments(PlateSearch, location="query")
def images_with_license(search: dict, license: str):
    """MD5s of the images showing a plate

    With ?fuzzy=N also plates N edits away, nearest first. An edit is a lookalike swap
    (O/0, I/1, B/8, S/5, Z/2, G/6) or a missing or extra character; any other changed
    character counts as two. The course's `7B9SJLD` (a misread `789-SJL`: one lookalike, one
    extra character) is found with fuzzy=2.
    """
    store = current().store
    fuzziness = search["fuzzy"]
    if not fuzziness:
        return jsonify(store.md5s(store.images_with_plate(license)))
    md5s: list[str] = []
    for plate, _distance in store.plates_near(license, fuzziness):
        for md5 in store.md5s(store.images_with_plate(plate)):
            if md5 not in md5s:
                md5s.append(md5)
    return jsonify(md5s)
