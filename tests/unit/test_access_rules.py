"""Pure rules of access control and erasure: scopes, settings, dropping erased faces from memory."""

import numpy as np
import pytest

from imagescan import apikeys, keys
from imagescan.config import ConfigError, Settings
from imagescan.faceindex import EncodingMatrix
from rest.auth import required_scopes


def test_scopes_parse_and_refuse_unknown_ones():
    assert apikeys.parse_scopes(" read, FACES ") == {"read", "faces"}
    for bad in ("", "read,everything", ","):
        with pytest.raises(ValueError):
            apikeys.parse_scopes(bad)


def test_scope_of_a_route_by_endpoint_then_by_method():
    assert required_scopes("faces.match", "GET") == ("faces",)
    assert required_scopes("jobs.job_output", "GET") == ("read", "faces")
    assert required_scopes("plates.upload_image", "PUT") == ("upload",)
    assert required_scopes("erasure.delete_image", "DELETE") == ("admin",)
    assert required_scopes("some.new_route", "GET") == ("read",)
    assert required_scopes("some.new_route", "TRACE") == ("admin",)


def test_auth_and_retention_settings():
    assert Settings.from_env({}).auth == "seed" and Settings.from_env({}).retention_days == 0
    assert Settings.from_env({"AUTH": "KEYS", "RETENTION_DAYS": "30"}).retention_days == 30
    with pytest.raises(ConfigError):
        Settings.from_env({"AUTH": "open"})
    with pytest.raises(ConfigError):
        Settings.from_env({"RETENTION_DAYS": "-1"})


def test_tombstones_never_spell_the_digest():
    digest = "ab" * 32
    assert digest not in keys.erased(digest) and keys.erased(digest) == keys.erased(digest.upper())


def test_erased_faces_leave_the_matrix_and_the_rest_still_match():
    rng = np.random.default_rng(7)
    encodings = rng.normal(size=(6, 128)).astype(np.float32)
    matrix = EncodingMatrix(capacity=2)
    matrix.append(encodings, ["a", "a", "b", "c", "b", "d"], [1, 2, 3, 4, 5, 6])
    assert matrix.remove_faces([3, 5, 99]) == 2
    assert len(matrix) == 4
    for row, owner in ((0, "a"), (1, "a"), (3, "c"), (5, "d")):
        assert matrix.within(encodings[row], 1e-6) == {owner: 0.0}
    assert matrix.within(encodings[2], 1e-6) == {} and matrix.within(encodings[4], 1e-6) == {}
    matrix.append(encodings[2:3], ["b"], [7])  # appending after a removal keeps rows aligned
    assert matrix.within(encodings[2], 1e-6) == {"b": 0.0}
