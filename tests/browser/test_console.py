"""The web console in a real browser, on real servers: REST over HTTP, Redis, RabbitMQ and a
worker running the real plate and face engines."""

from __future__ import annotations

import hashlib
import re

from playwright.sync_api import expect

from imagescan.platetext import normalize_plate
from tests.browser.conftest import save_screenshot
from tests.conftest import shared_data
from tests.imagefactory import with_gps

PLATE_PHOTO = ("plates", "br", "AYO9034.jpg")  # read right by the default engine (bench/plates.py)
OBAMA_1 = "face_recognition/examples_knn_examples_train_obama_obama.jpg"
OBAMA_2 = "face_recognition/examples_knn_examples_train_obama_obama2.jpg"
API_KEY = "test-key-1"  # one of the keys the `settings` fixture configures
ANALYSIS_TIMEOUT_MS = 120_000
LOOKALIKES = str.maketrans("O0I1B8S5Z2G6", "0O1I8B5S2Z6G")


def misread(plate: str) -> str:
    """The plate as a poor reading gives it: one lookalike swapped, the last character lost."""
    for position, char in enumerate(plate):
        if char.translate(LOOKALIKES) != char:
            plate = plate[:position] + char.translate(LOOKALIKES) + plate[position + 1:]
            break
    return plate[:-1]


def geotagged_plate_photo(tmp_path):
    path = shared_data(*PLATE_PHOTO)
    truth = normalize_plate(path.with_suffix(".txt").read_text().split("\t")[5])
    photo = tmp_path / "parked-car.jpg"
    photo.write_bytes(with_gps(path.read_bytes(), -23.55052, -46.633308, make="Canon", model="EOS 5D"))
    return photo, truth


def test_upload_see_the_plate_drawn_search_it_fuzzily_and_chart_it(page, start_worker, tmp_path):
    start_worker()
    photo, plate = geotagged_plate_photo(tmp_path)
    requests = []
    page.on("request", lambda request: requests.append(request))

    page.goto("/")
    expect(page.get_by_role("heading", name="Images", exact=True)).to_be_visible()
    page.locator("#file-input").set_input_files(str(photo))
    upload = page.locator(".upload", has_text="parked-car.jpg")
    expect(upload.get_by_role("link", name=re.compile("open"))).to_be_visible()
    expect(upload.locator(".tag")).to_have_count(0)  # one file: not a bulk upload

    # The list updates by itself until the plate shows.
    card = page.locator(".cards .card", has_text="parked-car.jpg")
    expect(card.locator(f'[data-plate="{plate}"]')).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    expect(card.locator("img.thumb")).to_have_attribute("src", re.compile("^blob:"))
    save_screenshot(page, "home")

    card.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/ui/images/[0-9a-f]{64}$"))
    expect(page.get_by_role("heading", name="parked-car.jpg", exact=True)).to_be_visible()
    expect(page.locator(".overlay .box.plate rect.edge")).to_have_count(1)
    box = page.locator(".overlay .box.plate rect.edge").bounding_box()
    assert box and box["width"] > 10 and box["height"] > 5, "the plate box is drawn at a visible size"
    expect(page.locator("table [data-plate]")).to_have_text(plate)
    expect(page.locator(".facts")).to_contain_text("-23.550520, -46.633308")
    expect(page.locator(".facts")).to_contain_text("Canon EOS 5D")
    page.wait_for_function("document.querySelector('img.photo').complete")
    save_screenshot(page, "image")

    page.get_by_role("link", name="Search", exact=True).click()
    page.get_by_label("Plate (spaces and dashes are ignored)").fill(misread(plate))
    page.get_by_label("Match").select_option("2")
    page.get_by_role("button", name="Search plates").click()
    expect(page).to_have_url(re.compile(r"/ui/search\?plate=.+&fuzzy=2$"))
    expect(page.locator(f'.cards [data-plate="{plate}"]')).to_be_visible()
    save_screenshot(page, "search")
    page.get_by_label("MD5, SHA-224 or SHA-256 (hex)").fill(hashlib.md5(photo.read_bytes()).hexdigest())
    page.get_by_role("button", name="Open image").click()
    expect(page.get_by_role("heading", name="parked-car.jpg", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/ui/images/[0-9a-f]{32}$"))

    # Stats need a key: the console says so, asks for it, and draws the charts once given.
    page.get_by_role("link", name="Stats", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("needs an API key")
    page.get_by_role("alert").get_by_role("button", name="Enter API key").click()
    page.get_by_label("API key (kept only in this browser tab)").fill(API_KEY)
    page.get_by_role("button", name="Use key").click()
    expect(page.get_by_role("img", name="New images per day, last 30 days")).to_be_visible()
    expect(page.locator('.chart .bar[data-value="1"]')).to_have_count(3)  # today, JPEG, the camera
    expect(page.get_by_role("alert")).to_be_hidden()
    save_screenshot(page, "stats")

    # Once given, the key goes with every request to the service, and stays in the tab only.
    page.get_by_role("link", name="Home", exact=True).click()
    expect(page.locator(".cards .card")).to_have_count(1)
    assert page.evaluate("sessionStorage.getItem('imagescan.apiKey')") == API_KEY
    assert page.evaluate("localStorage.length") == 0
    calls = [r for r in requests if r.resource_type in ("fetch", "xhr")]
    first_with_key = next(i for i, r in enumerate(calls) if r.headers.get("x-api-key") == API_KEY)
    assert first_with_key > 0 and "x-api-key" not in calls[0].headers
    assert all(r.headers.get("x-api-key") == API_KEY for r in calls[first_with_key:])


def test_a_bulk_upload_and_a_face_match(page, start_worker, tmp_path):
    start_worker()
    files = []
    for name, relative in (("obama-speech.jpg", OBAMA_1), ("obama-portrait.jpg", OBAMA_2)):
        files.append(tmp_path / name)
        files[-1].write_bytes(shared_data("faces", relative).read_bytes())

    page.goto("/")
    page.locator("#file-input").set_input_files([str(f) for f in files])
    expect(page.locator(".batch-title")).to_have_text("Bulk upload · 2 images")
    expect(page.locator(".upload .tag")).to_have_text(["bulk", "bulk"])
    first = page.locator(".cards .card", has_text="obama-speech.jpg")
    expect(first.get_by_text("1 face")).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
    expect(page.locator(".cards .card", has_text="obama-portrait.jpg").get_by_text("1 face")).to_be_visible(
        timeout=ANALYSIS_TIMEOUT_MS)

    first.get_by_role("link").click()
    expect(page.locator(".overlay .box.face rect.edge")).to_have_count(1)
    match = page.get_by_role("list", name="Other images with face 1").get_by_role("link")
    expect(match).to_have_text("obama-portrait.jpg")
    save_screenshot(page, "faces")
    match.click()
    expect(page.get_by_role("heading", name="obama-portrait.jpg", exact=True)).to_be_visible()
    expect(page.get_by_role("list", name="Other images with face 1").get_by_role("link")).to_have_text(
        "obama-speech.jpg")


def test_pages_work_on_a_phone_sized_screen_and_by_keyboard(page, chromium, live_server):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    # The file picker is reachable with Tab and announces itself by its label.
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    assert page.evaluate("document.activeElement.id") == "file-input"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"
    save_screenshot(page, "home-phone", full_page=False)
    page.goto("/ui/images/" + "0" * 64)
    expect(page.get_by_role("heading", name="No such image", exact=True)).to_be_visible()
    page.goto("/ui/search?digest=not-hex")
    expect(page.get_by_text("A digest is 32, 56 or 64 hexadecimal characters.")).to_be_visible()


def test_the_console_works_when_every_data_route_needs_a_key(app, page):
    """Access control that asks a key of every API route: the console asks for one, then sends
    it with every call, images included, and shows what it could not show before."""
    from flask import jsonify, request

    console_paths = re.compile(r"^/($|ui/(search|stats|images/[^/]+|static/.*)$)")

    @app.before_request
    def _every_route_needs_a_key():
        if not console_paths.match(request.path) and request.headers.get("x-api-key") != API_KEY:
            return jsonify({"error": "an API key with the read scope is needed", "status": 401}), 401
        return None

    data = shared_data("faces", OBAMA_1).read_bytes()
    assert app.test_client().put("/image/guarded.jpg", data=data, headers={"x-api-key": API_KEY}).status_code == 200

    page.goto("/")
    expect(page.get_by_role("alert")).to_contain_text("needs an API key")
    page.get_by_role("alert").get_by_role("button", name="Enter API key").click()
    page.get_by_label("API key (kept only in this browser tab)").fill(API_KEY)
    page.get_by_role("button", name="Use key").click()
    card = page.locator(".cards .card", has_text="guarded.jpg")
    expect(card.locator("img.thumb")).to_have_attribute("src", re.compile("^blob:"))
    card.get_by_role("link").click()
    expect(page.get_by_role("heading", name="guarded.jpg", exact=True)).to_be_visible()
    expect(page.locator("img.photo")).to_have_attribute("src", re.compile("^blob:"))
    expect(page.get_by_role("alert")).to_be_hidden()
