"""What the web console reads: the recent-images listing, thumbnails and stat counts, on real
servers (Redis, RabbitMQ) and, where an analysis is needed, a real worker."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from imagescan import keys, recent
from tests.conftest import wait_for_status
from tests.imagefactory import jpeg, png, with_gps

KEY = {"x-api-key": "test-key-1"}


def upload(client, data: bytes, name: str) -> str:
    response = client.put(f"/image/{name}", data=data)
    assert response.status_code == 200, response.get_json()
    return hashlib.sha256(data).hexdigest()


def read_all_pages(client, limit: int) -> list[str]:
    shown, cursor = [], None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"/images{query}")
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        assert len(page["images"]) <= limit
        shown += [image["sha256"] for image in page["images"]]
        cursor = page["next"]
        if cursor is None:
            return shown


def test_listing_is_newest_first_and_pages_neither_repeat_nor_skip(client):
    uploaded = [upload(client, jpeg(seed=seed), f"photo-{seed}.jpg") for seed in range(7)]
    assert read_all_pages(client, 3) == uploaded[::-1]
    assert read_all_pages(client, 100) == uploaded[::-1]


def test_images_arriving_between_pages_do_not_shift_the_next_page(client):
    older = [upload(client, jpeg(seed=seed), f"old-{seed}.jpg") for seed in range(4)]
    first = client.get("/images?limit=2").get_json()
    upload(client, jpeg(seed=99), "new.jpg")
    second = client.get(f"/images?limit=2&cursor={first['next']}").get_json()
    assert [i["sha256"] for i in first["images"] + second["images"]] == older[::-1]


def test_images_received_at_the_same_moment_are_each_listed_once(client, redis_client):
    digests = [upload(client, jpeg(seed=seed), f"same-{seed}.jpg") for seed in range(5)]
    for sha in digests:  # one score for all
        redis_client.zadd(keys.recent_images(keys.shard_of(sha)), {sha: 1_700_000_000.5})
    assert sorted(read_all_pages(client, 2)) == sorted(digests)


def test_a_row_has_names_status_plates_and_face_count(client, start_worker):
    start_worker()
    data = with_gps(jpeg(seed=3), 48.1, 17.1)
    sha256 = upload(client, data, "first.jpg")
    upload(client, data, "second.jpg")
    wait_for_status(client, sha256)
    row = client.get("/images").get_json()["images"][0]
    assert row == {"sha256": sha256, "md5": hashlib.md5(data).hexdigest(), "names": ["first.jpg", "second.jpg"],
                   "status": "done", "received_at": row["received_at"], "format": "JPEG", "plates": [], "faces": 0}


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=nonsense", "cursor=1.5_abc"])
def test_bad_limits_and_cursors_are_400(client, query):
    response = client.get(f"/images?{query}")
    assert response.status_code == 400
    assert response.get_json()["status"] == 400


def test_cursor_round_trips_the_exact_score():
    sha = "a" * 64
    for score in (1733112345.1234567, 1700000000.0, 1.5):
        assert recent.decode_cursor(recent.encode_cursor(score, sha)) == (score, sha)


def test_thumbnail_is_a_bounded_upright_jpeg_and_is_cached(client, redis_client):
    sha256 = upload(client, png(600, 300), "wide.png")
    response = client.get(f"/images/{hashlib.md5(png(600, 300)).hexdigest()}/thumbnail?size=128")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(response.data)).size == (128, 64)
    assert redis_client.get(keys.thumbnail(sha256, 128)) == response.data
    assert client.get(f"/images/{sha256}/thumbnail").status_code == 200  # 256 by default
    again = client.get(f"/images/{sha256}/thumbnail?size=128", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_a_small_image_is_not_enlarged(client):
    sha256 = upload(client, jpeg(64, 48), "small.jpg")
    response = client.get(f"/images/{sha256}/thumbnail?size=512")
    assert Image.open(io.BytesIO(response.data)).size == (64, 48)


@pytest.mark.parametrize("size", ["0", "100", "x", "100000"])
def test_thumbnail_sizes_outside_the_few_offered_are_400(client, size):
    sha256 = upload(client, jpeg(), "a.jpg")
    assert client.get(f"/images/{sha256}/thumbnail?size={size}").status_code == 400


def test_thumbnail_of_an_unknown_image_is_404(client):
    assert client.get(f"/images/{'0' * 64}/thumbnail").status_code == 404


def test_stat_counts_need_a_key_and_count_days_formats_and_cameras(client, start_worker):
    assert client.get("/api/stats/counts").status_code == 403
    assert client.get("/api/stats/counts", headers={"x-api-key": "wrong"}).status_code == 401
    start_worker()
    for data, name in ((with_gps(jpeg(seed=1), 1.0, 2.0, make="Canon", model="EOS 5D"), "a.jpg"),
                       (with_gps(jpeg(seed=2), 1.0, 2.0, make="Canon", model="EOS 5D"), "b.jpg"),
                       (png(), "c.png")):
        wait_for_status(client, upload(client, data, name))
    counts = client.get("/api/stats/counts", headers=KEY).get_json()
    assert len(counts["uploads_per_day"]) == 30
    assert counts["uploads_per_day"][-1]["count"] == 3
    assert sum(day["count"] for day in counts["uploads_per_day"]) == 3
    assert counts["formats"] == [{"format": "JPEG", "count": 2}, {"format": "PNG", "count": 1}]
    assert counts["cameras"] == [{"camera": "Canon - EOS 5D", "count": 2}]


def test_console_pages_are_one_document_with_a_strict_content_policy(client):
    for path in ("/", "/ui/search", "/ui/stats", f"/ui/images/{'0' * 64}"):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert b'<script type="module" src="/ui/static/js/app.js">' in response.data
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert client.get("/ui/static/js/app.js").mimetype == "text/javascript"
    assert client.get("/ui/static/../__init__.py").status_code == 404
