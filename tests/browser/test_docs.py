"""/docs in Chromium: Swagger UI, served by the service itself, renders the generated description
with no request leaving the service (the `page` fixture fails the test on any such request or on
a script error) and answers a "try it out" call."""

from __future__ import annotations

from playwright.sync_api import expect


def test_swagger_ui_renders_every_operation_offline(page, client):
    operations = sum(len(methods) for methods in client.get("/openapi.json").get_json()["paths"].values())

    page.goto("/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() == operations
    expect(page.locator(".errors-wrapper")).to_have_count(0)  # Swagger UI found nothing wrong

    page.locator("#operations-plates-get_license_license").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_placeholder("license").fill("ABC123")
    page.get_by_role("button", name="Execute").click()
    expect(page.locator(".live-responses-table tr.response .response-col_status")).to_have_text("200")
