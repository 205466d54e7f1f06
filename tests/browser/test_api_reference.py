"""The API reference page (/api/docs): Swagger UI, vendored from npm, renders every operation of the
served OpenAPI document under the app's strict CSP, without errors and without a session."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from gateway.security import CONTENT_SECURITY_POLICY
from tests.browser.conftest import screenshot
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.browser

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def documented_operations() -> list[tuple[str, str, dict]]:
    document = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def test_the_api_reference_page_renders_every_operation(page, watched):
    response = page.goto("/api/docs")
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    expect(page.get_by_role("heading", name="KeyLM API")).to_be_visible()
    operations = documented_operations()
    expect(page.locator(".opblock")).to_have_count(len(operations))
    for method, path, operation in operations:
        block = page.locator(f".opblock-{method}").filter(has=page.locator(f'[data-path="{path}"]'))
        expect(block).to_have_count(1)
        expect(block.locator(".opblock-summary-description")).to_have_text(operation["summary"])
    screenshot(page, "api-reference")
    assert watched.csp_violations == []


def test_an_operation_opens_with_its_responses_and_no_try_it_out(page, watched):
    page.goto("/api/docs")
    send = page.locator("#operations-threads-sendMessage")
    send.locator(".opblock-summary-control").click()
    expect(send.locator(".responses-table")).to_be_visible()
    expect(send.get_by_text("text/event-stream").first).to_be_visible()
    expect(send.get_by_role("button", name="Try it out")).to_have_count(0)
    assert watched.csp_violations == []
