"""When things go wrong: a failed reply retried with the same clientRequestId, and a revoked key."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, new_email, provider_down, screenshot, sign_up

pytestmark = pytest.mark.browser


def signed_in_with_key(page, suite, provider: str = "openai", api_key: str = "sk-test-recovery-key-5555"):
    """Register and connect a key over the API (same browser context, so the page is signed in too)."""
    base = suite.url("gateway")
    response = page.request.post(
        "/api/auth/register", data={"email": new_email("recovery"), "password": PASSWORD}
    )
    assert response.status == 201, response.text()
    response = page.request.post(
        f"/api/providers/{provider}/keys", data={"apiKey": api_key}, headers={"Origin": base}
    )
    assert response.status == 201, response.text()
    return response.json()["key"]


def start_byok_thread(page, provider: str, model: str) -> None:
    page.goto("/")
    page.get_by_label("Answered by").select_option(provider)
    page.get_by_label("Model", exact=True).select_option(model)


def test_a_failed_reply_is_retried_with_the_same_client_request_id(page, browser_suite):
    signed_in_with_key(page, browser_suite)
    start_byok_thread(page, "openai", "gpt-4o-mini")
    sent: list[dict] = []
    page.on(
        "request",
        lambda request: (
            sent.append(json.loads(request.post_data))
            if request.method == "POST" and request.url.endswith("/messages")
            else None
        ),
    )

    provider_down(browser_suite, "openai", True)
    try:
        box = page.get_by_role("textbox", name="Message")
        box.fill("Are you there?")
        box.press("Enter")
        retry = page.get_by_role("button", name="Retry this message")
        expect(retry).to_be_visible(timeout=20_000)
        expect(page.locator("#messages .meta-error")).not_to_be_empty()
        screenshot(page, "reply-failed")
    finally:
        provider_down(browser_suite, "openai", False)

    retry.click()
    reply = page.locator("#messages li.msg-assistant").last
    expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(reply.locator(".msg-body")).to_contain_text("Are you there?")
    assert len(sent) == 2
    assert sent[0]["clientRequestId"] == sent[1]["clientRequestId"]
    assert sent[0]["content"] == sent[1]["content"] == "Are you there?"

    page.reload()  # the retry took the failed request over: one exchange, complete
    expect(page.locator("#messages li.msg-user")).to_have_count(1)
    expect(page.locator("#messages li.msg-assistant")).to_have_count(1)
    expect(page.locator("#messages li.msg-assistant")).to_have_attribute("data-status", "complete")


def test_revoking_a_key_asks_first_and_hides_the_model_dropdown(page, browser_suite):
    key = signed_in_with_key(page, browser_suite, api_key="sk-test-revoke-me-9876")
    start_byok_thread(page, "openai", "gpt-4o")
    box = page.get_by_role("textbox", name="Message")
    box.fill("Hi [[sim:tokens=3]]")
    box.press("Enter")
    expect(page.locator("#messages li.msg-assistant").last).to_have_attribute("data-status", "complete")

    page.get_by_role("button", name="API keys").click()
    dialog = page.get_by_role("dialog", name="API keys")
    item = dialog.locator("#key-list li")
    expect(item).to_contain_text(key["keyMask"])
    expect(item).to_contain_text(re.compile("Used .*ago|Used just now"))
    item.get_by_role("button", name=re.compile("^Revoke key")).click()
    confirm = page.get_by_role("dialog", name="Revoke this key?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Cancel").click()
    expect(item).to_contain_text("Active")  # cancelled: nothing happened

    item.get_by_role("button", name=re.compile("^Revoke key")).click()
    confirm.get_by_role("button", name="Revoke key").click()
    expect(item).to_contain_text("Revoked")
    expect(item.get_by_role("button", name=re.compile("^Revoke key"))).to_have_count(0)
    dialog.get_by_role("button", name="Close API keys").click()

    # The thread stays readable; sending in it now says why it cannot.
    box.fill("Still there?")
    box.press("Enter")
    expect(
        page.locator("#messages li.msg-user.not-sent, #messages li.msg-assistant[data-status=failed]")
    ).to_have_count(1)
    expect(page.locator("#messages .meta-error").last).not_to_be_empty()

    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Answered by").select_option("openai")
    expect(page.locator("#setup-model-row")).to_be_hidden()
    expect(page.locator("#setup-provider-hint")).to_contain_text("Add your OpenAI key")


def test_keepalive_pings_between_tokens_are_ignored(page):
    sign_up(page)
    box = page.get_by_role("textbox", name="Message")
    box.fill("Slowly [[sim:delay=1200]] [[sim:text=one two three]]")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/messages")) as info:
        box.press("Enter")
    reply = page.locator("#messages li.msg-assistant").last
    expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(reply.locator(".msg-body")).to_have_text("one two three")
    body = info.value.text()
    assert ": ping" in body  # the gateway kept the silent stream alive, and the page paid it no mind
