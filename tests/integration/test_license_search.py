"""`/license/<plate>`: exact by default, lookalike-tolerant with ?fuzzy=N, nearest first."""

from collections import Counter

import pytest

from imagescan import keys, migrate
from imagescan.digests import Digests
from imagescan.store import ImageStore
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


def test_two_missing_characters_are_found_through_the_pair_forms(app, client, plates):
    assert app.extensions["imagescan"].store.plate_index.pairs_filed()  # a fresh index has them
    assert client.get("/license/89SJ?fuzzy=2").get_json() == [plates["789SJ"], plates["789SJL"]]
    assert client.get("/license/89SJ?fuzzy=1").get_json() == [plates["789SJ"]]


def _without_pair_forms(redis_client) -> None:
    """The index as an earlier release wrote it: single forms only, no marker."""
    doomed = [key for key in redis_client.scan_iter(match="plate:fz2:*")]
    assert keys.plate_pairs_filed().encode() in doomed and len(doomed) > 1
    for key in doomed:
        redis_client.delete(key)


def test_an_index_without_pair_forms_finds_the_same_until_the_migration_files_them(app, redis_client, plates):
    _without_pair_forms(redis_client)
    store = ImageStore(redis_client)  # a process started on that index
    assert not store.plate_index.pairs_filed()
    assert [plate for plate, _ in store.plates_near("89SJ", 2)] == ["789SJ", "789SJL"]  # by insertions
    indexed(app, "XYZ987", 60)  # a plate filed now has its pair forms, the others still not
    store.plate_index.add(["XYZ988"])
    assert not store.plate_index.pairs_filed()

    counts = Counter()
    migrate.file_plate_pairs(redis_client, False, counts)
    assert counts["plates filed in the fuzzy index"] == 4
    assert ImageStore(redis_client).plate_index.pairs_filed()
    assert [plate for plate, _ in ImageStore(redis_client).plates_near("89SJ", 2)] == ["789SJ", "789SJL"]
    assert ImageStore(redis_client).plates_near("Y987", 2) == [("XYZ987", 2)]
    migrate.file_plate_pairs(redis_client, False, counts)  # once filed, a second run does nothing
    assert counts["plates filed in the fuzzy index"] == 4
