"""The plates API (seeds/1-plates-api.md): upload by filename, plates by hash, hashes by plate."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..errors import ApiError
from ..ingest import accept_image
from ..services import current

blueprint = Blueprint("plates", __name__)
MAX_FUZZINESS = 2


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


def _fuzziness() -> int:
    """`fuzzy` query parameter: 0 (exact, the default), 1 or 2 lookalike/missing-character edits."""
    raw = request.args.get("fuzzy", "0").lower()
    levels = {"0": 0, "false": 0, "no": 0, "1": 1, "true": 1, "yes": 1, "2": 2}
    if raw not in levels:
        raise ApiError(400, f"fuzzy must be 0, 1 or {MAX_FUZZINESS}")
    return levels[raw]


@blueprint.get("/license/<license>")
def images_with_license(license: str):
    """MD5s of the images showing this plate; with ?fuzzy=N also plates N edits away, nearest first.

    An edit is a lookalike swap (O/0, I/1, B/8, S/5, Z/2, G/6) or a missing or extra
    character; any other changed character counts as two. The course's `7B9SJLD` (a misread
    `789-SJL`: one lookalike, one extra character) is found with fuzzy=2.
    """
    store = current().store
    fuzziness = _fuzziness()
    if not fuzziness:
        return jsonify(store.md5s(store.images_with_plate(license)))
    md5s: list[str] = []
    for plate, _distance in store.plates_near(license, fuzziness):
        for md5 in store.md5s(store.images_with_plate(plate)):
            if md5 not in md5s:
                md5s.append(md5)
    return jsonify(md5s)
