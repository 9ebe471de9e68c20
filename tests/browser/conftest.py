"""A real HTTP server for the REST app and Debian's Chromium driven by Playwright.

The browser is the distribution's (`/usr/bin/chromium`, installed by `make system-deps`);
Playwright's own browser download is never used. Screenshots are written only when
CONSOLE_SCREENSHOTS names a folder (scripts/console-screenshots.sh sets it), so a test run
leaves the committed ones alone.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-default-apps", "--disable-sync"]
SCREENSHOT_WIDTH = 900  # pixels wide at most, in a palette: small enough to commit
SCREENSHOT_COLOURS = 128


@pytest.fixture
def live_server(app):
    """The app on a real threaded HTTP server on a free loopback port; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian package chromium; `make system-deps`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser tab (own session storage) whose relative URLs go to the live server.

    It fails the test on any script error or any request that leaves the server's origin."""
    context = chromium.new_context(base_url=live_server, viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    script_errors: list[str] = []
    foreign: list[str] = []
    tab.on("pageerror", lambda error: script_errors.append(str(error)))
    tab.on("request", lambda request: None if request.url.startswith((live_server, "blob:", "data:"))
           else foreign.append(request.url))
    yield tab
    context.close()
    assert not script_errors, f"script errors: {script_errors}"
    assert not foreign, f"requests outside the service: {foreign}"


def save_screenshot(tab, name: str, full_page: bool = True) -> None:
    """docs/screenshots/<name>.png, downscaled and reduced to a palette, when asked for."""
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if not folder:
        return
    from PIL import Image

    shot = Image.open(io.BytesIO(tab.screenshot(full_page=full_page))).convert("RGB")
    if shot.width > SCREENSHOT_WIDTH:
        shot = shot.resize((SCREENSHOT_WIDTH, round(shot.height * SCREENSHOT_WIDTH / shot.width)), Image.LANCZOS)
    small = shot.quantize(colors=SCREENSHOT_COLOURS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    Path(folder).mkdir(parents=True, exist_ok=True)
    small.save(Path(folder) / f"{name}.png", optimize=True)
