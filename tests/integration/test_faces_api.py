"""The faces API end to end on real servers: scan, match, URL scanning and its refusals."""

import hashlib
import http.server
import threading

import pytest

from tests.conftest import shared_data, wait_for_status
from tests.imagefactory import jpeg

OBAMA_1 = "face_recognition/examples_knn_examples_train_obama_obama.jpg"
OBAMA_2 = "face_recognition/examples_knn_examples_train_obama_obama2.jpg"
BIDEN = "face_recognition/examples_knn_examples_train_biden_biden2.jpg"
OBAMA_AND_BIDEN = "face_recognition/examples_knn_examples_test_obama_and_biden.jpg"
LENNON = "openface/lennon-1.jpg"


def face_photo(relative: str) -> bytes:
    return shared_data("faces", relative).read_bytes()


def scan(client, name: str, data: bytes) -> str:
    response = client.post(f"/scan/image/{name}", data=data, content_type="image/jpg")
    assert response.status_code == 200, response.get_json()
    digest = response.get_json()["hash"]
    assert digest == hashlib.sha224(data).hexdigest()
    return digest


def scan_and_wait(client, name: str, relative: str) -> str:
    digest = scan(client, name, face_photo(relative))
    document = wait_for_status(client, digest)
    assert document["status"] == "done", document
    return digest


def test_same_person_matches_both_ways_and_others_do_not(client, start_worker):
    start_worker()
    first = scan_and_wait(client, "obama1.jpg", OBAMA_1)
    second = scan_and_wait(client, "obama2.jpg", OBAMA_2)
    other = scan_and_wait(client, "lennon.jpg", LENNON)
    assert client.get(f"/match/{first}").get_json() == ["obama2.jpg"]
    assert client.get(f"/match/{second}").get_json() == ["obama1.jpg"]
    assert client.get(f"/match/{other}").get_json() == []
    document = client.get(f"/images/{first}").get_json()
    assert len(document["faces"]) == 1
    face = document["faces"][0]
    assert set(face["box"]) == {"x", "y", "w", "h"}
    assert [m["names"] for m in face["matches"]] == [["obama2.jpg"]]
    assert 0 <= face["matches"][0]["distance"] <= 0.6


def test_image_with_two_faces_matches_both_people(client, start_worker):
    start_worker()
    scan_and_wait(client, "obama.jpg", OBAMA_1)
    scan_and_wait(client, "biden.jpg", BIDEN)
    both = scan_and_wait(client, "both.jpg", OBAMA_AND_BIDEN)
    assert sorted(client.get(f"/match/{both}").get_json()) == ["biden.jpg", "obama.jpg"]
    faces = client.get(f"/images/{both}").get_json()["faces"]
    assert len(faces) >= 2  # a third, small face is in the background
    # Face by face: one face matches only Obama's photo, another only Biden's.
    matched = sorted(name for face in faces for match in face["matches"] for name in match["names"])
    assert matched == ["biden.jpg", "obama.jpg"]


def test_faceless_image_and_unknown_hash_answer_empty_lists(client, start_worker):
    start_worker()
    digest = scan(client, "plain.jpg", jpeg(seed=21))
    assert wait_for_status(client, digest)["status"] == "done"
    assert client.get(f"/match/{digest}").get_json() == []
    assert client.get("/match/" + "0" * 56).get_json() == []
    assert client.get("/match/nonsense").get_json() == []


def test_two_workers_at_once_still_match_each_other(client, start_worker):
    """Both photos are in flight on two workers at the same moment, repeatedly."""
    start_worker()
    start_worker()
    for round_number in range(3):
        # Different bytes each round (a re-encoded copy), so each round is two new images.
        first = scan(client, f"a{round_number}.jpg", face_photo(OBAMA_1) + bytes([round_number]))
        second = scan(client, f"b{round_number}.jpg", face_photo(OBAMA_2) + bytes([round_number]))
        for digest in (first, second):
            assert wait_for_status(client, digest)["status"] == "done"
        assert f"b{round_number}.jpg" in client.get(f"/match/{first}").get_json()
        assert f"a{round_number}.jpg" in client.get(f"/match/{second}").get_json()


@pytest.fixture
def image_server():
    """A local HTTP server that serves one photo, text, and a redirect to itself."""
    photo = face_photo(OBAMA_1)
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/photo.jpg")
                self.end_headers()
                return
            body, kind = (photo, "image/jpeg") if self.path == "/photo.jpg" else (b"hello", "text/plain")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", photo, hits
    server.shutdown()


@pytest.fixture
def private_client(settings):
    from rest.app import create_app

    return create_app(settings.replace(allow_private_urls=True)).test_client()


def test_scan_url_fetches_once_and_names_the_image_by_its_url(private_client, image_server, start_worker):
    base, photo, hits = image_server
    url = f"{base}/photo.jpg"
    start_worker()
    first = private_client.post("/scan/url", json={"url": url})
    assert first.status_code == 200
    assert first.get_json() == {"hash": hashlib.sha224(photo).hexdigest()}
    second = private_client.post("/scan/url", json={"url": url})
    assert second.get_json() == first.get_json()
    assert hits == ["/photo.jpg"], "a URL already scanned must not be fetched again"
    document = wait_for_status(private_client, first.get_json()["hash"])
    assert document["names"] == [url] and document["status"] == "done"


def test_scan_url_follows_redirects_and_refuses_non_images(private_client, image_server):
    base, photo, _ = image_server
    assert private_client.post("/scan/url", json={"url": f"{base}/redirect"}).get_json() == {
        "hash": hashlib.sha224(photo).hexdigest()
    }
    refused = private_client.post("/scan/url", json={"url": f"{base}/text"})
    assert refused.status_code == 415 and refused.get_json()["error"]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:1/x.jpg", "http://localhost/x.jpg", "http://10.0.0.1/x.jpg",
     "http://169.254.169.254/latest/meta-data/", "http://[::1]/x.jpg"],
)
def test_scan_url_refuses_private_addresses_by_default(client, url):
    response = client.post("/scan/url", json={"url": url})
    assert response.status_code == 403
    assert response.get_json()["error"]


def test_scan_url_refuses_a_redirect_to_a_private_address_by_default(client, image_server):
    base, _, hits = image_server
    response = client.post("/scan/url", json={"url": f"{base}/redirect"})
    assert response.status_code == 403
    assert hits == [], "the private server must not be contacted at all"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://example.com/", "not a url"])
def test_scan_url_refuses_other_schemes(client, url):
    response = client.post("/scan/url", json={"url": url})
    assert response.status_code == 400
    assert response.get_json()["error"]


@pytest.mark.parametrize(
    "body, content_type",
    [(b"{not json", "application/json"), (b'{"link": "x"}', "application/json"), (b"[1]", "application/json"),
     (b"", "application/json")],
)
def test_scan_url_refuses_malformed_requests(client, body, content_type):
    response = client.post("/scan/url", data=body, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json()["error"]
