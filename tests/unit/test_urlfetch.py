"""fetch_image against a local http.server on 127.0.0.1."""

from __future__ import annotations

import io
import ipaddress
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from imagescan import urlfetch
from imagescan.urlfetch import FetchRefused, fetch_image, forbidden_reason, image_signature


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


PNG = _image_bytes("PNG")
JPEG = _image_bytes("JPEG")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # no keep-alive: a body without length ends at close

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.requests.append((parts.path, self.headers.get("Host")))
        route = getattr(self, "route_" + parts.path.strip("/").replace("-", "_").replace(".", "_"), None)
        if route is None:
            self._send(404, "text/plain", b"not found")
            return
        try:
            route(parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading on purpose

    def _send(self, status: int, content_type: str | None, body: bytes, length: bool = True) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_cat_png(self, query):
        self._send(200, "image/png", PNG)

    def route_photo_jpg(self, query):
        self._send(200, "application/octet-stream", JPEG)

    def route_untyped(self, query):
        self._send(200, None, JPEG)

    def route_page_html(self, query):
        self._send(200, "text/html; charset=utf-8", b"<html><body>hello</body></html>")

    def route_fake_png(self, query):
        self._send(200, "image/png", b"<html><body>not really a png at all</body></html>")

    def route_svg(self, query):
        self._send(200, "image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')

    def route_declared_huge(self, query):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(10**10))
        self.end_headers()
        self.wfile.write(PNG)

    def route_endless(self, query):
        # no Content-Length: only counting while streaming can stop this
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(PNG)
        for _ in range(400):
            self.wfile.write(b"\0" * 16384)

    def route_slow(self, query):
        time.sleep(1.5)
        self._send(200, "image/png", PNG)

    def route_redirect(self, query):
        self.send_response(int(query.get("status", ["302"])[0]))
        self.send_header("Location", query["to"][0])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def route_loop(self, query):
        self.send_response(302)
        self.send_header("Location", "/loop")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def base(server):
    server.requests.clear()
    return f"http://127.0.0.1:{server.server_address[1]}"


def refused(url: str, **options) -> FetchRefused:
    with pytest.raises(FetchRefused) as caught:
        fetch_image(url, **options)
    return caught.value


# -- what is fetched ----------------------------------------------------------------


def test_fetches_a_local_image_when_private_addresses_are_allowed(base):
    fetched = fetch_image(base + "/cat.png", allow_private=True)
    assert fetched.data == PNG
    assert fetched.content_type == "image/png"
    assert fetched.final_url == base + "/cat.png"


def test_generic_or_missing_content_type_is_judged_by_signature(base):
    assert fetch_image(base + "/photo.jpg", allow_private=True).content_type == "image/jpeg"
    assert fetch_image(base + "/untyped", allow_private=True).data == JPEG


def test_follows_relative_and_absolute_redirects(base):
    fetched = fetch_image(base + "/redirect?to=/cat.png", allow_private=True)
    assert fetched.final_url == base + "/cat.png"
    fetched = fetch_image(f"{base}/redirect?status=308&to={base}/photo.jpg", allow_private=True)
    assert fetched.data == JPEG


def test_connects_to_the_vetted_address_with_the_url_host_name(server, base):
    """One lookup per hop; the socket goes to that address, the Host header keeps the name."""
    port = server.server_address[1]
    lookups = []

    def rebinding_resolver(host, lookup_port):
        lookups.append((host, lookup_port))
        # a rebinding DNS would answer differently the second time: there must be no second time
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.255.255.1"]

    fetched = fetch_image(
        f"http://images.example:{port}/cat.png", allow_private=True, resolver=rebinding_resolver
    )

    assert fetched.data == PNG
    assert lookups == [("images.example", port)]
    assert server.requests == [("/cat.png", f"images.example:{port}")]


# -- refused addresses ----------------------------------------------------------------


def test_loopback_is_refused_by_default_before_any_request(server, base):
    error = refused(base + "/cat.png")
    assert error.status == 403
    assert "loopback" in error.reason
    assert server.requests == []


def test_a_name_resolving_to_loopback_is_refused(server):
    error = refused(f"http://localhost:{server.server_address[1]}/cat.png")
    assert error.status == 403


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "127.1", "[::ffff:7f00:1]", "[::1]", "0.0.0.0", "[::]", "169.254.169.254"],
)
def test_obfuscated_loopback_and_special_hosts_are_refused(host):
    """Vetting looks at the address the name resolves to, not at how the URL spells it."""
    assert refused(f"http://{host}/a.png").status == 403


def test_a_name_with_any_private_address_is_refused():
    error = refused("http://mixed.example/cat.png", resolver=lambda host, port: ["93.184.215.14", "10.1.2.3"])
    assert error.status == 403
    assert "10.1.2.3" in error.reason


def test_redirect_to_a_private_address_is_refused(base, server, monkeypatch):
    """The first hop counts as public here; the redirect target must be vetted again."""
    real_policy = urlfetch.forbidden_reason

    def loopback_origin_is_public(address, allow_private=False):
        return None if str(address) == "127.0.0.1" else real_policy(address, allow_private)

    monkeypatch.setattr(urlfetch, "forbidden_reason", loopback_origin_is_public)
    port = server.server_address[1]
    assert fetch_image(base + "/cat.png").data == PNG  # the origin itself is fetched

    for target in (
        "http://10.0.0.7/x.png",
        f"http://127.0.0.2:{port}/cat.png",
        f"http://[::1]:{port}/cat.png",
    ):
        server.requests.clear()
        error = refused(f"{base}/redirect?to={target}")
        assert error.status == 403, target
        assert [path for path, _ in server.requests] == ["/redirect"]


def test_metadata_address_is_refused_even_when_private_is_allowed(base):
    error = refused(base + "/redirect?to=http://169.254.169.254/latest/meta-data/", allow_private=True)
    assert error.status == 403
    assert "metadata" in error.reason
    assert refused("http://metadata.google.internal/computeMetadata/v1/", allow_private=True).status == 403


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::1",
    ],
)
def test_non_public_addresses_are_forbidden(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_allow_private_still_refuses_metadata_multicast_and_unspecified():
    assert forbidden_reason(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    assert forbidden_reason(ipaddress.ip_address("127.0.0.1"), allow_private=True) is None
    for address in ("169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254", "224.0.0.1", "0.0.0.0"):
        assert forbidden_reason(ipaddress.ip_address(address), allow_private=True) is not None, address


# -- refused URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_stats",
        "ftp://example.com/a.png",
        "javascript:alert(1)",
        "//example.com/a.png",
        "example.com/a.png",
        "http://",
        "http://user:secret@example.com/a.png",
        "http://example.com:99999/a.png",
        "http://exa mple.com/a.png",
        "",
    ],
)
def test_bad_urls_and_schemes_are_refused_with_400(url):
    assert refused(url, allow_private=True).status == 400


# -- refused answers ---------------------------------------------------------------------


def test_non_image_content_is_refused_with_415(base):
    assert refused(base + "/page.html", allow_private=True).status == 415
    assert refused(base + "/fake.png", allow_private=True).status == 415
    assert refused(base + "/svg", allow_private=True).status == 415


def test_declared_oversize_is_refused_with_413(base):
    assert refused(base + "/declared-huge", allow_private=True).status == 413


def test_streamed_oversize_stops_reading_with_413(base):
    error = refused(base + "/endless", allow_private=True, max_bytes=100_000)
    assert error.status == 413
    assert fetch_image(base + "/cat.png", allow_private=True, max_bytes=len(PNG)).data == PNG


def test_upstream_errors_are_502(base):
    assert refused(base + "/missing.png", allow_private=True).status == 502
    error = refused(base + "/loop", allow_private=True, max_redirects=3)
    assert error.status == 502
    assert "redirects" in error.reason


def test_connection_refused_is_502():
    with socket_bound_but_not_listening() as port:
        assert refused(f"http://127.0.0.1:{port}/a.png", allow_private=True).status == 502


def test_slow_upstream_times_out_with_504(base):
    # the server answers after 1.5 s: without the read timeout this would be a 200
    assert refused(base + "/slow", allow_private=True, timeout=0.3).status == 504


def test_image_signatures():
    assert image_signature(PNG) == "image/png"
    assert image_signature(JPEG) == "image/jpeg"
    assert image_signature(_image_bytes("GIF")) == "image/gif"
    assert image_signature(_image_bytes("WEBP")) == "image/webp"
    assert image_signature(_image_bytes("BMP")) == "image/bmp"
    assert image_signature(_image_bytes("TIFF")) == "image/tiff"
    assert image_signature(b"%PDF-1.7 ...") is None
    assert image_signature(b"") is None


class socket_bound_but_not_listening:
    """A local port nobody listens on, held so no other test takes it."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return self._socket.getsockname()[1]

    def __exit__(self, *exc_info) -> None:
        self._socket.close()


# -- TLS: the socket goes to the pinned IP, SNI and certificate check use the URL's name ---


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 whose self-signed certificate names only images.example."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=images.example",
         "-addext", "subjectAltName=DNS:images.example", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_names: list = []
    server_context.sni_callback = lambda sock, name, context: server_names.append(name)
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd, cert, server_names
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def trust_test_certificate(tls_server, monkeypatch):
    import ssl

    _, cert, _ = tls_server
    monkeypatch.setattr(urlfetch, "_tls_context", lambda: ssl.create_default_context(cafile=str(cert)))


def test_https_uses_the_url_host_for_sni_and_certificate(tls_server, trust_test_certificate):
    httpd, _, server_names = tls_server
    port = httpd.server_address[1]
    server_names.clear()
    fetched = fetch_image(
        f"https://images.example:{port}/cat.png", allow_private=True, resolver=lambda host, p: ["127.0.0.1"]
    )
    assert fetched.data == PNG
    assert server_names == ["images.example"]


def test_https_certificate_for_another_name_is_refused_with_502(tls_server, trust_test_certificate):
    port = tls_server[0].server_address[1]
    error = refused(
        f"https://elsewhere.example:{port}/cat.png",
        allow_private=True,
        resolver=lambda host, p: ["127.0.0.1"],
    )
    assert error.status == 502
    assert "TLS" in error.reason


def test_a_hanging_dns_lookup_is_bounded_by_the_fetch_deadline():
    def hanging(host, port):
        time.sleep(5)
        return ["93.184.216.34"]

    started = time.monotonic()
    error = refused("http://slow-dns.example/x.jpg", resolver=hanging, timeout=0.5)
    assert error.status == 504 and "resolving" in error.reason
    assert time.monotonic() - started < 2
