"""`/license/<plate>`: exact by default, lookalike-tolerant with ?fuzzy=N, nearest first."""

import pytest

from imagescan.digests import Digests
from tests.imagefactory import jpeg


def indexed(app, plate: str, seed: int) -> str:
    """An image record whose analysis found `plate`, written through the store; its MD5."""
    store = app.extensions["imagescan"].store
    digests = Digests.of(jpeg(seed=seed))
    store.register_upload(digests, 100, f"{plate}.jpg")
    reading = {"plate": plate, "confidence": 0.9, "box": {"x": 0, "y": 0, "w": 1, "h": 1}, "candidates": []}
    store.save_analysis(digests.sha256, format="JPEG", width=64, height=48,
                        results={"plates": [reading], "geotag": None}, camera_label=None)
    return digests.md5


@pytest.fixture
def plates(app):
    return {plate: indexed(app, plate, seed) for seed, plate in enumerate(["789SJL", "789SJ", "ABC123"], 50)}


def test_exact_search_is_exact_and_normalised(client, plates):
    assert client.get("/license/789-sjl").get_json() == [plates["789SJL"]]
    assert client.get("/license/7B9SJL").get_json() == []
    assert client.get("/license/---").get_json() == []


def test_fuzzy_finds_a_lookalike_and_ranks_the_nearest_first(client, plates):
    # 7B9SJL: one lookalike from 789SJL (distance 1), two edits from 789SJ.
    assert client.get("/license/7B9SJL?fuzzy=1").get_json() == [plates["789SJL"]]
    assert client.get("/license/789SJL?fuzzy=1").get_json() == [plates["789SJL"], plates["789SJ"]]


def test_the_course_misreading_is_found_with_two_edits(client, plates):
    """OpenALPR read 789-SJL as 7B9SJLD: a lookalike and an extra character."""
    assert client.get("/license/7B9SJLD?fuzzy=1").get_json() == []
    assert plates["789SJL"] in client.get("/license/7B9SJLD?fuzzy=2").get_json()


def test_a_different_plate_is_not_a_fuzzy_match(client, plates):
    assert client.get("/license/XYZ999?fuzzy=2").get_json() == []
    assert plates["ABC123"] not in client.get("/license/ABC723?fuzzy=1").get_json()


def test_bad_fuzziness_is_400(client, plates):
    response = client.get("/license/789SJL?fuzzy=9")
    assert response.status_code == 400 and response.get_json()["error"]
