"""An image's names: listings show the most recent few with a count; all of them page by page."""

from __future__ import annotations

from imagescan.digests import Digests
from imagescan.store import NAMES_SHOWN
from tests.imagefactory import jpeg


def _many_names(app, count: int) -> Digests:
    store = app.extensions["imagescan"].store
    digests = Digests.of(jpeg(seed=77))
    for i in range(count):
        store.register_upload(digests, 100, f"name-{i:04d}.jpg")
    return digests


def test_the_record_shows_the_most_recent_names_and_how_many_there_are(app, client):
    digests = _many_names(app, NAMES_SHOWN + 30)
    document = client.get(f"/images/{digests.md5}").get_json()
    assert document["names_total"] == NAMES_SHOWN + 30
    assert document["names"] == [f"name-{i:04d}.jpg" for i in range(30, NAMES_SHOWN + 30)]


def test_every_name_can_be_paged_through(app, client):
    digests = _many_names(app, 130)
    names, path = [], f"/images/{digests.sha224}/names?limit=60"
    while path:
        page = client.get(path).get_json()
        assert page["total"] == 130
        names += page["names"]
        path = page["next"]
    assert names == [f"name-{i:04d}.jpg" for i in range(130)]


def test_bad_paging_is_a_400_and_an_unknown_image_a_404(app, client):
    digests = _many_names(app, 3)
    for query in ("limit=0", "limit=5000", "offset=-1", "limit=x"):
        response = client.get(f"/images/{digests.md5}/names?{query}")
        assert response.status_code == 400 and response.get_json()["error"]
    assert client.get(f"/images/{'0' * 32}/names").status_code == 404
    assert client.get(f"/images/{digests.md5}/names?offset=10").get_json() == {
        "names": [], "total": 3, "offset": 10, "next": None}
