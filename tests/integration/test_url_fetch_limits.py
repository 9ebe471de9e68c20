"""/scan/url holds a request thread while it fetches: the number of fetches at once is capped."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from tests.imagefactory import answer_with_jpeg, jpeg


class _SlowImage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(3 if self.path.startswith("/slow") else 0)
        body = jpeg(seed=len(self.path))
        answer_with_jpeg(self, body)

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowImage)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_scan_url_answers_503_beyond_its_concurrency_cap(settings, slow_server):
    from rest.app import create_app

    app = create_app(settings.replace(allow_private_urls=True, url_fetch_concurrency=1))
    try:
        client = app.test_client()
        first: list = []
        fetching = threading.Thread(target=lambda: first.append(
            client.post("/scan/url", json={"url": f"{slow_server}/slow.jpg"})))
        fetching.start()
        time.sleep(0.5)
        started = time.monotonic()
        second = client.post("/scan/url", json={"url": f"{slow_server}/quick.jpg"})
        assert time.monotonic() - started < 1
        assert second.status_code == 503 and int(second.headers["Retry-After"]) > 0
        assert "in progress" in second.get_json()["error"]
        fetching.join(10)
        assert first[0].status_code == 200, first[0].get_json()
        # The slot is free again.
        assert client.post("/scan/url", json={"url": f"{slow_server}/quick.jpg"}).status_code == 200
    finally:
        app.extensions["imagescan"].publisher.close()
