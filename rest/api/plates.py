"""The plates API (seeds/1-plates-api.md): upload by filename, plates by hash, hashes by plate."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from imagescan import platetext

from ..errors import ApiError
from ..ingest import accept_image
from ..services import current

blueprint = Blueprint("plates", __name__)
FUZZY_MAX_DISTANCE = 1


@blueprint.route("/image/<path:filename>", methods=["PUT", "POST"])
def upload_image(filename: str):
    # Clients send any content type (the handout always says image/png): the bytes decide.
    digests = accept_image(request.get_data(cache=False), filename)
    return jsonify({"hash": digests.md5})


@blueprint.get("/hash/<checksum>")
def plates_of_image(checksum: str):
    store = current().store
    sha256 = store.resolve(checksum)
    return jsonify(store.plates_with_location(sha256) if sha256 else [])


def _fuzzy_flag() -> bool:
    raw = request.args.get("fuzzy", "0").lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ApiError(400, "fuzzy must be 1 or 0")
    return raw in ("1", "true", "yes")


@blueprint.get("/license/<license>")
def images_with_license(license: str):
    store = current().store
    if not _fuzzy_flag():
        return jsonify(store.md5s(store.images_with_plate(license)))
    wanted = platetext.normalize_plate(license)
    if not wanted:
        return jsonify([])
    ranked = sorted(
        (distance, plate)
        for plate in store.known_plates()
        if (distance := platetext.lookalike_distance(wanted, plate)) is not None and distance <= FUZZY_MAX_DISTANCE
    )
    md5s: list[str] = []
    for _, plate in ranked:
        for md5 in store.md5s(store.images_with_plate(plate)):
            if md5 not in md5s:
                md5s.append(md5)
    return jsonify(md5s)
