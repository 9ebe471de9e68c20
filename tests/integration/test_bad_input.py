"""Hostile and broken input: every answer is a 4xx JSON document with an `error`, never a 5xx.

Uploads of broken images, decompression bombs, hostile EXIF, strange file names, bodies over
the size limit (on a real gunicorn), malformed `/scan/url` requests and SSRF attempts, and API
key guessing. After all that, a good image is still analysed.
"""

from __future__ import annotations

import http.server
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import piexif
import pytest
import requests
from PIL import Image

from tests.conftest import REPO_ROOT, WorkerThread, wait_for_status
from tests.imagefactory import answer_with_jpeg, jpeg, png, with_gps

# -- crafted bad images -----------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming 10 gigapixels, with a few bytes of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) was rewritten to claim another size."""
    data = bytearray(jpeg(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen
    frame = data.index(b"\x2c")  # image descriptor: left, top, width, height
    data[frame + 5:frame + 9] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def corrupt_jpeg_tables() -> bytes:
    """A JPEG whose Huffman tables are garbage: the header parses, the pixels cannot."""
    data = bytearray(jpeg(64, 48, seed=5))
    dht = data.index(b"\xff\xc4")
    for offset in range(dht + 5, dht + 25):
        data[offset] = 0xFF
    return bytes(data)


def with_app1(data: bytes, payload: bytes) -> bytes:
    """A JPEG with one more APP1 segment right after SOI."""
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def hostile_exif_jpeg() -> bytes:
    """EXIF with huge texts, zero denominators, an impossible date and impossible GPS."""
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Make: b"M" * 30000, piexif.ImageIFD.Model: b"\x00\xff\xfe" * 100,
                piexif.ImageIFD.XResolution: (72, 0), piexif.ImageIFD.Orientation: 9},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"9999:99:99 99:99:99"},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((200, 1), (0, 1), (0, 1)),
                piexif.GPSIFD.GPSLongitudeRef: b"Q", piexif.GPSIFD.GPSLongitude: ((1, 0), (75, 1), (0, 0))},
    })
    return with_app1(jpeg(64, 48, seed=6), exif)


def garbage_exif_jpeg() -> bytes:
    return with_app1(jpeg(64, 48, seed=7), b"Exif\x00\x00" + os.urandom(2000))


def looping_exif_jpeg() -> bytes:
    """A TIFF header whose first IFD offset points at itself."""
    return with_app1(jpeg(64, 48, seed=8), b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01"
                     + b"\x87\x69\x00\x04\x00\x00\x00\x01\x00\x00\x00\x08" + b"\x00\x00\x00\x08")


REFUSED_UPLOADS = {
    "empty": b"",
    "text": b"hello, this is not an image",
    "html": b"<html><body>no</body></html>",
    "truncated-jpeg": jpeg(300, 200, seed=1)[:300],
    "truncated-png": png(64, 64)[:60],
    "png-bad-zlib": png(64, 64)[:41] + b"\x00\x00" + png(64, 64)[43:],  # IDAT's zlib header
    "corrupt-jpeg-tables": corrupt_jpeg_tables(),
    "jpeg-header-only": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "png-bomb": png_bomb(),
    "jpeg-bomb": jpeg_with_size(65000, 65000),
    "gif-bomb": gif_bomb(),
    "zero-width-jpeg": jpeg_with_size(0, 16),
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>',
    "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
}

# Accepted (they are real pictures), analysed, with the hostile EXIF ignored.
ODD_BUT_VALID = {
    "hostile-exif": hostile_exif_jpeg,
    "garbage-exif": garbage_exif_jpeg,
    "looping-exif": looping_exif_jpeg,
    "gps-out-of-range": lambda: with_gps(jpeg(64, 48, seed=9), 48.1, 17.1)
    .replace(b"N\x00", b"X\x00", 1),
}


def assert_json_4xx(response, *statuses):
    assert 400 <= response.status_code < 500, (response.status_code, response.data[:300])
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.get_json())
    assert response.is_json, response.data[:300]
    assert isinstance(response.get_json()["error"], str) and response.get_json()["error"]


# -- uploads --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFUSED_UPLOADS))
@pytest.mark.parametrize("route", ["/image/x.jpg", "/scan/image/x.jpg"])
def test_broken_image_is_refused(client, route, name):
    response = client.post(route, data=REFUSED_UPLOADS[name], content_type="image/jpeg")
    expected = {"png-bomb": (413,), "jpeg-bomb": (413,), "gif-bomb": (413,), "empty": (400,),
                "text": (415,), "html": (415,)}.get(name, ())
    assert_json_4xx(response, *expected)


@pytest.mark.parametrize("route, field", [("/jobs", "image"), ("/upload_file", "image")])
@pytest.mark.parametrize("name", ["empty", "text", "truncated-jpeg", "png-bomb"])
def test_broken_image_in_a_form_is_refused(client, route, field, name):
    data = {field: (io.BytesIO(REFUSED_UPLOADS[name]), "x.jpg")}
    response = client.post(route, data=data, content_type="multipart/form-data")
    assert_json_4xx(response)


def test_form_without_the_field_is_refused(client):
    for route in ("/jobs", "/upload_file"):
        assert_json_4xx(client.post(route, data={"other": "x"}, content_type="multipart/form-data"), 400)
        assert_json_4xx(client.post(route, data=b"raw bytes", content_type="image/jpeg"), 400)


def test_wrong_kind_of_body_is_refused(client):
    """A form where raw bytes are expected, JSON where a form is expected, and the like."""
    def form():
        return {"image": (io.BytesIO(jpeg(seed=4)), "x.jpg")}

    assert_json_4xx(client.post("/image/x.jpg", data=form(), content_type="multipart/form-data"))
    assert_json_4xx(client.post("/scan/image/x.jpg", json={"image": "aGVsbG8="}), 415)
    assert_json_4xx(client.post("/upload_file", json={"image": "aGVsbG8="}), 400)
    assert_json_4xx(client.post("/jobs", data=b"--x\r\n", content_type="multipart/form-data; boundary=x"))
    assert_json_4xx(client.post("/jobs", data=b"garbage", content_type="multipart/form-data"))
    assert_json_4xx(client.post("/scan/url", data=form(), content_type="multipart/form-data"), 400)


def test_image_service_batch_with_one_bad_file_is_refused_whole(client):
    link = client.post("/api/generate-upload-link", json={"expiry": 60},
                       headers={"x-api-key": "test-key-1"}).get_json()["upload_id"]
    files = [(io.BytesIO(jpeg(seed=2)), "good.jpg"), (io.BytesIO(png_bomb()), "bomb.png")]
    response = client.post(f"/api/upload-images/{link}", data={"image_files": files},
                           content_type="multipart/form-data", headers={"x-api-key": "test-key-1"})
    assert_json_4xx(response, 413)
    assert "bomb.png" in response.get_json()["error"]


# -- names ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/image/a%00b.jpg",  # NUL
    "/image/a%0d%0aSet-Cookie:%20x.jpg",  # CR LF
    "/image/%ff%fe.jpg",  # invalid UTF-8
    "/image/%c0%ae%c0%ae/x.jpg",  # overlong UTF-8 dots
    "/image/" + "n" * 2000 + ".jpg",  # very long
    "/scan/image/%ed%a0%80.jpg",  # an encoded UTF-16 surrogate
], ids=["nul", "crlf", "invalid-utf8", "overlong-utf8", "long", "surrogate"])
def test_unusable_name_is_refused(client, path):
    # 404 for CR LF: the route's <path:> does not match a line break at all.
    assert_json_4xx(client.post(path, data=jpeg(seed=3)), 400, *((404,) if "%0d" in path else ()))


@pytest.mark.parametrize("name", ["../../etc/passwd", "..%2f..%2fetc%2fshadow", "dir/../x.jpg", "%2e%2e/x.jpg"])
def test_path_like_name_is_only_a_name(client, settings, name):
    """The name is recorded as given: nothing is written under a client-chosen path."""
    data = jpeg(seed=sum(map(ord, name)))
    response = client.post(f"/image/{name}", data=data)
    assert response.status_code == 200, response.get_json()
    names = client.get(f"/images/{response.get_json()['hash']}").get_json()["names"]
    assert len(names) == 1 and names[0].endswith(("passwd", "shadow", "x.jpg"))
    assert settings.blob_store == "redis"


@pytest.mark.parametrize("path", ["/images/..%2f..%2fetc", "/images/" + "f" * 5000, "/images/%00",
                                  "/hash/%ff", "/license/%00%00", "/match/..", "/jobs/%00",
                                  "/api/images/%ff", "/no/such/route"])
def test_odd_lookups_answer_json_without_a_5xx(client, path):
    response = client.get(path)
    assert response.status_code < 500
    assert response.is_json


# -- size limits, on a real gunicorn -----------------------------------------------


@pytest.fixture
def rest_server(settings, tmp_path):
    """`python -m rest` (gunicorn) on a free port against the test servers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "REDIS_HOST": settings.redis_host,
           "REDIS_PORT": str(settings.redis_port), "RABBITMQ_HOST": settings.rabbitmq_host,
           "RABBITMQ_PORT": str(settings.rabbitmq_port), "MAX_UPLOAD_MB": str(settings.max_upload_mb),
           "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "4", "LOG_LEVEL": "WARNING"}
    with open(tmp_path / "rest.stderr", "wb") as log:  # the child keeps its own copy
        process = subprocess.Popen([sys.executable, "-m", "rest"], cwd=REPO_ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "rest.stderr").read_text()
        time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(30)


def _raw_answer(sock: socket.socket) -> tuple[int, bytes]:
    sock.settimeout(10)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), body


def test_declared_length_over_the_limit_is_refused_before_reading(rest_server, settings):
    """Content-Length says 10 GB and only 2 bytes follow: the answer comes at once."""
    with socket.create_connection(("127.0.0.1", rest_server)) as sock:
        sock.sendall(b"POST /image/huge.jpg HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
                     b"Content-Length: 10737418240\r\n\r\n\xff\xd8")
        status, body = _raw_answer(sock)
    assert status == 413
    assert b'"error"' in body


def test_chunked_body_over_the_limit_is_refused(rest_server, settings):
    chunk = b"\0" * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", rest_server)) as sock:
        sock.sendall(b"POST /scan/image/huge.jpg HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(settings.max_upload_mb + 2):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        status, _ = _raw_answer(sock)
    assert status == 413


def test_body_over_the_limit_in_the_test_client(client, settings):
    too_big = b"\xff\xd8" + b"0" * (settings.max_upload_bytes + 1)
    assert_json_4xx(client.post("/scan/image/big.jpg", data=too_big), 413)


# -- /scan/url ------------------------------------------------------------------


@pytest.mark.parametrize("body, content_type", [
    (b"{", "application/json"),
    (b"[1, 2]", "application/json"),
    (b'{"url": 5}', "application/json"),
    (b'{"url": ""}', "application/json"),
    (b'{"link": "http://example.com/x.jpg"}', "application/json"),
    (b"url=http://example.com/x.jpg", "application/x-www-form-urlencoded"),
    (b"\xff\xfe{\x00", "application/json"),
    (b"", "application/json"),
    (b'"http://example.com/x.jpg"', "text/plain"),
], ids=["truncated-json", "array", "number", "empty-url", "wrong-key", "form", "bad-encoding", "empty",
        "bare-string"])
def test_malformed_scan_url_request_is_400(client, body, content_type):
    assert_json_4xx(client.post("/scan/url", data=body, content_type=content_type), 400)


class _ImageAndRedirects(http.server.BaseHTTPRequestHandler):
    """/image.jpg is a real image; /to?<url> redirects there."""

    def do_GET(self):
        if self.path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", self.path[4:])
            self.end_headers()
            return
        body = jpeg(seed=77)
        answer_with_jpeg(self, body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_image_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageAndRedirects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_ssrf_targets_are_refused(client, local_image_server):
    """Every one of these would reach something inside; the image server really is there."""
    port = local_image_server.rsplit(":", 1)[1]
    inside = [
        f"{local_image_server}/image.jpg",  # loopback
        f"http://localhost:{port}/image.jpg",  # a name resolving to loopback
        f"http://127.1:{port}/image.jpg",
        f"http://2130706433:{port}/image.jpg",  # 127.0.0.1 as one number
        f"http://0x7f000001:{port}/image.jpg",
        f"http://[::1]:{port}/image.jpg",
        f"http://[::ffff:127.0.0.1]:{port}/image.jpg",  # IPv4-mapped IPv6
        "http://0.0.0.0/image.jpg",
        "http://10.0.0.1/image.jpg",
        "http://172.16.5.4/image.jpg",
        "http://192.168.1.1/image.jpg",
        "http://100.64.0.1/image.jpg",  # shared address space
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        f"{local_image_server}/to?http://169.254.169.254/latest/meta-data/",
    ]
    for url in inside:
        response = client.post("/scan/url", json={"url": url})
        assert_json_4xx(response, 400, 403)
        assert response.status_code == 403 or "resolve" in response.get_json()["error"], (url, response.get_json())


def test_a_redirect_from_a_public_host_to_a_private_address_is_refused(client, local_image_server, monkeypatch):
    """The first hop is public (a name resolving to a public address, served here by the test
    server), so only the redirect's target can be what is refused."""
    from imagescan import urlfetch

    port = int(local_image_server.rsplit(":", 1)[1])
    public = "93.184.216.34"
    resolve = urlfetch._resolve
    monkeypatch.setattr(urlfetch, "_resolve",
                        lambda host, p: [public] if host == "public.example" else resolve(host, p))
    connect = socket.create_connection

    def dial_the_test_server(address, *args, **kwargs):
        return connect(("127.0.0.1", port) if address[0] == public else address, *args, **kwargs)

    monkeypatch.setattr(urlfetch.socket, "create_connection", dial_the_test_server)
    public_url = f"http://public.example:{port}"
    assert client.post("/scan/url", json={"url": f"{public_url}/image.jpg"}).status_code == 200
    for inside in ("http://10.0.0.1/image.jpg", f"http://127.0.0.1:{port}/image.jpg",
                   "http://169.254.169.254/latest/meta-data/"):
        redirected = client.post("/scan/url", json={"url": f"{public_url}/to?{inside}"})
        assert_json_4xx(redirected, 403)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL", "ftp://example.com/x.jpg",
    "dict://127.0.0.1:11211/stats", "javascript:alert(1)", "//example.com/x.jpg", "x.jpg",
    "http://user:secret@example.com/x.jpg", "http://exa mple.com/x.jpg", "http://[::1/x.jpg",
    "http://example.com:99999/x.jpg",
])
def test_non_http_and_malformed_urls_are_400(client, url):
    assert_json_4xx(client.post("/scan/url", json={"url": url}), 400)


def test_redirect_to_metadata_is_refused_even_when_private_urls_are_allowed(settings, local_image_server):
    from rest.app import create_app

    app = create_app(settings.replace(allow_private_urls=True))
    try:
        client = app.test_client()
        allowed = client.post("/scan/url", json={"url": f"{local_image_server}/image.jpg"})
        assert allowed.status_code == 200, allowed.get_json()
        redirected = client.post("/scan/url", json={
            "url": f"{local_image_server}/to?http://169.254.169.254/latest/meta-data/"})
        assert_json_4xx(redirected, 403)
    finally:
        app.extensions["imagescan"].publisher.close()


# -- API keys -----------------------------------------------------------------------


def test_api_key_guessing_is_refused_then_rate_limited(client):
    from rest.auth import MAX_FAILURES

    assert_json_4xx(client.get("/api/stats"), 403)
    assert client.get("/api/stats", headers={"x-api-key": "test-key-2"}).status_code == 200
    for attempt in range(MAX_FAILURES):
        assert_json_4xx(client.get("/api/stats", headers={"x-api-key": f"guess-{attempt}"}), 401)
    locked = client.get("/api/stats", headers={"x-api-key": "test-key-1"})
    assert_json_4xx(locked, 429)
    assert int(locked.headers["Retry-After"]) > 0
    for header in ("", "\u00e9" * 3, "x" * 10000):
        response = client.post("/api/generate-upload-link", headers={"x-api-key": header})
        assert_json_4xx(response, 401, 403, 429)


# -- and afterwards, service as usual ---------------------------------------------


def test_odd_but_valid_images_are_analysed_and_a_good_image_after_all_the_abuse(client, settings):
    from imagescan.analyzers import NoFaces, NoPlates
    from imagescan.blobs import open_blob_store
    from imagescan.faceindex import FaceIndex
    from imagescan.store import ImageStore, connect_redis
    from worker.services import WorkerServices

    redis_client = connect_redis(settings)
    worker = WorkerThread(WorkerServices(
        settings=settings, redis=redis_client, store=ImageStore(redis_client),
        blobs=open_blob_store(settings, redis_client), plates=NoPlates(), faces=NoFaces(),
        face_index=FaceIndex(redis_client, settings.face_tolerance),
    )).start()
    try:
        for body in REFUSED_UPLOADS.values():
            assert 400 <= client.post("/image/bad.jpg", data=body).status_code < 500
        odd = {name: client.post(f"/image/{name}.jpg", data=make()) for name, make in ODD_BUT_VALID.items()}
        for name, response in odd.items():
            assert response.status_code == 200, (name, response.get_json())
            document = wait_for_status(client, response.get_json()["hash"], timeout=30)
            assert document["status"] == "done", (name, document)
            assert document["geotag"] is None, name
            make = document["exif"]["make"]
            assert make is None or len(make) <= 128
        good = client.put("/image/good.jpg", data=jpeg(seed=99))
        assert good.status_code == 200
        assert wait_for_status(client, good.get_json()["hash"], timeout=30)["status"] == "done"
    finally:
        worker.stop()
