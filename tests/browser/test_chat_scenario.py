"""The product's own scenario in a real browser: KeyLM Free until it runs out, then a key of one's own,
a BYOK thread with streamed markdown replies, stop, reload, untrusted output, phone width, sign out.

Every provider is the simulator; `[[sim:...]]` directives in a prompt shape its reply.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    FREE_LIMIT,
    PHONE,
    REPO_ROOT,
    provider_down,
    screenshot,
    sign_up,
    unlabelled_controls,
)

pytestmark = pytest.mark.browser

VALID_KEY = "sk-test-browser-valid-Zq7x4821"
INVALID_KEY = "sk-test-invalid-000000"
XSS_REPLY = (
    "[[sim:text=Careful: <img src=x onerror=alert(1)> and [click me](javascript:alert(2)) "
    '<a href="javascript:alert(3)">or me</a> <svg onload=alert(4)></svg> <script>alert(5)</script> done]]'
)
MARKDOWN_REPLY = (
    "Binary search, please [[sim:delay=15]] [[sim:text=## Binary search\\n\\n"
    "Halve the range on every step:\\n\\n```python\\ndef search(items, target):\\n"
    "    lo, hi = 0, len(items) - 1\\n    while lo <= hi:\\n        mid = (lo + hi) // 2\\n"
    "        if items[mid] == target:\\n            return mid\\n        if items[mid] < target:\\n"
    "            lo = mid + 1\\n        else:\\n            hi = mid - 1\\n    return -1\\n```\\n\\n"
    "- **O(log n)** comparisons\\n- the input must be *sorted*]]"
)


def assistant_replies(page):
    return page.locator("#messages li.msg-assistant")


def send(page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def send_and_wait(page, text: str, status: str = "complete") -> None:
    before = assistant_replies(page).count()
    send(page, text)
    expect(assistant_replies(page)).to_have_count(before + 1)
    expect(assistant_replies(page).last).to_have_attribute("data-status", status, timeout=20_000)


def local_clock(iso: str, zone: str) -> str:
    """What the page should print for a UTC instant in the browser's time zone ("1:00 AM")."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    return f"{moment.hour % 12 or 12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def test_free_then_byok_streaming_stop_reload_untrusted_output_and_sign_out(page, watched, browser_suite):
    sign_up(page)
    meter = page.locator("#free-meter")
    expect(meter).to_contain_text(f"{FREE_LIMIT} of {FREE_LIMIT} left")
    usage = page.request.get("/api/usage/free").json()
    # The reset time is shown in the user's own time zone (the context runs in Europe/Paris).
    expect(page.locator("#free-meter-detail")).to_contain_text(local_clock(usage["resetsAt"], "Europe/Paris"))

    # ---- KeyLM Free at once, no key needed ------------------------------------------------------
    expect(page.get_by_label("Answered by")).to_have_value("free")
    expect(page.locator("#setup-model-row")).to_be_hidden()  # no key yet: no model dropdown
    send_and_wait(page, "Hello there [[sim:tokens=3]]")
    expect(page.locator("#chat-badges")).to_contain_text("KeyLM Free")
    expect(meter).to_contain_text(f"{FREE_LIMIT - 1} of {FREE_LIMIT} left")
    assert "Hello there" in page.locator("#messages .msg-user").first.inner_text()
    screenshot(page, "free-chat")
    assert unlabelled_controls(page) == []

    for count in range(2, FREE_LIMIT + 1):
        send_and_wait(page, f"Message {count} [[sim:tokens=3]]")
        expect(meter).to_contain_text(f"{FREE_LIMIT - count} of {FREE_LIMIT} left")
        reminder = page.locator("#reminder-banner")
        if count < 5:
            expect(reminder).to_be_hidden()
        else:  # five free requests today: the reminder to bring a key stays up
            expect(reminder).to_be_visible()
            expect(reminder).to_contain_text("Connect a personal")

    exhausted = page.locator("#exhausted-banner")
    expect(exhausted).to_be_visible()
    expect(exhausted).to_contain_text("used up")
    send(page, "One more please")
    refused = page.locator("#messages li.msg-user.not-sent")
    expect(refused).to_have_count(1)
    expect(refused).to_contain_text("Not sent")
    expect(page.locator("#reminder-banner")).to_be_visible()
    screenshot(page, "free-exhausted")

    # ---- connect a key: an invalid one is refused, a valid one becomes active --------------------
    page.locator("#reminder-banner").get_by_role("button", name="Connect a key").click()
    dialog = page.get_by_role("dialog", name="API keys")
    expect(dialog).to_be_visible()
    key_input = dialog.get_by_label("OpenAI API key")
    key_input.fill(INVALID_KEY)
    dialog.get_by_role("button", name="Validate and save").click()
    expect(key_input).to_have_value("")  # the plaintext leaves the form on submit
    error = dialog.locator("#key-form .form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("not saved")
    expect(dialog.locator("#key-list li")).to_have_count(0)

    key_input.fill(VALID_KEY)
    dialog.get_by_label("Label (optional)").fill("Work")
    dialog.get_by_role("button", name="Validate and save").click()
    expect(key_input).to_have_value("")
    saved = dialog.locator("#key-list li")
    expect(saved).to_have_count(1)
    expect(saved).to_contain_text("Active")
    expect(saved).to_contain_text("Work")
    expect(saved.locator(".key-mask")).to_have_text(re.compile(r"^sk-.*4821$"))
    assert VALID_KEY not in page.content()
    expect(saved).to_contain_text("Validated")
    screenshot(page, "keys")
    assert unlabelled_controls(page) == []
    saved.get_by_role("button", name=re.compile("Re-validate")).click()
    expect(page.locator("#toast")).to_contain_text("valid")
    dialog.get_by_role("button", name="Close API keys").click()
    expect(page.locator("#reminder-banner")).to_be_hidden()  # a key is connected now

    # ---- the model dropdown appears once the provider has an active key --------------------------
    page.get_by_role("button", name="New chat").click()
    provider = page.get_by_label("Answered by")
    provider.select_option("anthropic")
    expect(page.locator("#setup-model-row")).to_be_hidden()
    expect(page.locator("#setup-provider-hint")).to_contain_text("Add your Anthropic key")
    provider.select_option("openai")
    model = page.get_by_label("Model", exact=True)
    expect(model).to_be_visible()
    expect(model.locator("option")).not_to_have_count(0)
    expect(page.locator("#setup-model-meta")).to_contain_text("updated")
    option_values = model.locator("option").evaluate_all("(options) => options.map((o) => o.value)")
    assert "gpt-4o" in option_values and "whisper-1" not in option_values
    model.select_option("gpt-4o")
    page.get_by_role("button", name="Refresh model list").click()
    expect(page.locator("#toast")).to_contain_text("Model list refreshed")
    # The provider cannot be reached: the saved list stays, marked stale.
    provider_down(browser_suite, "openai", True)
    try:
        page.get_by_role("button", name="Refresh model list").click()
        expect(page.locator("#setup-model-meta .badge-stale")).to_have_text("Stale")
        expect(model).to_have_value("gpt-4o")
    finally:
        provider_down(browser_suite, "openai", False)
    page.get_by_text("System prompt and settings").click()
    page.get_by_label("System prompt (optional)").fill("You are terse.")
    page.get_by_label("Temperature").fill("0.4")
    page.get_by_label("Max tokens").fill("800")
    screenshot(page, "new-chat-byok")
    assert unlabelled_controls(page) == []

    # Shift+Enter adds a line; it does not send.
    box = page.get_by_role("textbox", name="Message")
    box.fill("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(page.locator("#messages li")).to_have_count(0)

    # ---- a BYOK thread: deltas show before the reply ends ---------------------------------------
    send(page, "Tell me a story [[sim:tokens=40]] [[sim:delay=60]]")
    expect(page.locator("#chat-badges")).to_contain_text("OpenAI")
    expect(page.locator("#chat-badges")).to_contain_text("gpt-4o")
    page.wait_for_function(
        """() => {
            const reply = [...document.querySelectorAll('#messages li.msg-assistant')].pop();
            return reply && reply.dataset.status === 'streaming'
                && reply.querySelector('.msg-body').textContent.trim().length > 0;
        }""",
        timeout=10_000,
    )
    expect(page.get_by_role("button", name="Stop generating")).to_be_visible()
    story = assistant_replies(page).last
    expect(story).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(story.locator(".meta-tokens")).to_contain_text(
        re.compile(r"Prompt \d+ · Output \d+ · Total \d+ tokens")
    )
    expect(story.locator(".meta-model")).to_have_text("gpt-4o")
    expect(page.locator("#thread-info")).to_contain_text("temperature 0.4")

    send_and_wait(page, MARKDOWN_REPLY)
    code = assistant_replies(page).last.locator("pre code")
    expect(code).to_have_class(re.compile("hljs"))
    expect(code.locator(".hljs-keyword").first).to_be_visible()
    expect(assistant_replies(page).last.locator("h2")).to_have_text("Binary search")
    expect(assistant_replies(page).last.locator("strong")).to_have_text("O(log n)")

    # ---- stop a long reply mid-stream; the partial reply stays, marked stopped ------------------
    send(page, "A very long answer [[sim:tokens=600]] [[sim:delay=40]]")
    page.wait_for_function(
        """() => {
            const reply = [...document.querySelectorAll('#messages li.msg-assistant')].pop();
            return reply && reply.dataset.status === 'streaming'
                && reply.querySelector('.msg-body').textContent.trim().length > 40;
        }""",
        timeout=15_000,
    )
    page.get_by_role("button", name="Stop generating").click()
    stopped = assistant_replies(page).last
    expect(stopped).to_have_attribute("data-status", "stopped")
    expect(stopped.locator(".meta-status")).to_have_text("Stopped")
    partial = stopped.locator(".msg-body").inner_text()
    assert partial.strip()
    expect(page.get_by_role("button", name="Send message")).to_be_visible()
    assert watched.csp_violations == [], watched.csp_violations  # our own page never trips the CSP

    # ---- reload: history, usage and the stopped reply are all there ----------------------------
    page.wait_for_timeout(1500)  # the server notices the disconnect and stores the partial reply
    thread_url = page.url
    page.reload()
    assert page.url == thread_url
    expect(assistant_replies(page)).to_have_count(3)
    expect(assistant_replies(page).nth(0)).to_have_attribute("data-status", "complete")
    expect(assistant_replies(page).nth(0).locator(".meta-tokens")).to_contain_text("Total")
    expect(assistant_replies(page).nth(1).locator("pre code.hljs")).to_be_visible()
    expect(assistant_replies(page).nth(2)).to_have_attribute("data-status", "stopped")
    assert assistant_replies(page).nth(2).locator(".msg-body").inner_text().strip()
    expect(page.locator("#chat-usage")).to_contain_text("tokens used")
    expect(page.locator("#free-meter")).to_contain_text(f"0 of {FREE_LIMIT} left")
    threads = page.locator("#thread-list li")
    expect(threads).to_have_count(2)
    expect(threads.first).to_contain_text("Tell me a story")  # newest first
    expect(threads.first).to_contain_text("OpenAI · gpt-4o")
    screenshot(page, "chat")
    readme_screenshot(page)

    # ---- untrusted model output is never executed ----------------------------------------------
    send_and_wait(page, XSS_REPLY)
    reply = assistant_replies(page).last
    expect(reply.locator(".msg-body")).to_contain_text("Careful:")
    expect(reply.locator(".msg-body")).to_contain_text("done")
    messages = page.locator("#messages")
    assert messages.locator("img, svg, script, iframe").count() == 0
    assert page.locator("[onerror], [onload]").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0
    page.reload()  # and again when the stored reply is rendered from history
    expect(assistant_replies(page)).to_have_count(4)
    expect(assistant_replies(page).last.locator(".msg-body")).to_contain_text("Careful:")
    assert page.locator("[onerror], [onload]").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0
    page.wait_for_timeout(300)
    assert watched.dialogs == [], f"model output ran script: {watched.dialogs}"
    screenshot(page, "untrusted-output")

    # ---- rename and delete threads ------------------------------------------------------------
    page.get_by_role("button", name=re.compile(r"^Rename Tell me a story")).click()
    rename = page.get_by_role("dialog", name="Rename conversation")
    rename.get_by_label("Title").fill("Stories and search")
    rename.get_by_role("button", name="Save").click()
    expect(page.locator("#chat-title")).to_have_text("Stories and search")
    expect(threads.first).to_contain_text("Stories and search")
    page.get_by_role("button", name=re.compile(r"^Delete Hello there")).click()
    page.get_by_role("dialog", name="Delete this conversation?").get_by_role("button", name="Delete").click()
    expect(threads).to_have_count(1)
    page.reload()
    expect(page.locator("#chat-title")).to_have_text("Stories and search")
    expect(threads).to_have_count(1)

    # ---- phone width: the thread list collapses into a drawer -----------------------------------
    page.set_viewport_size(PHONE)
    sidebar = page.locator("#sidebar")
    expect(sidebar).not_to_be_in_viewport()
    expect(page.get_by_role("textbox", name="Message")).to_be_in_viewport()
    screenshot(page, "phone-chat")
    page.get_by_role("button", name="Open conversation list").click()
    expect(sidebar).to_be_in_viewport(ratio=1)
    screenshot(page, "phone-threads")
    assert unlabelled_controls(page) == []
    threads.first.get_by_role("link").click()
    expect(sidebar).not_to_be_in_viewport()

    # ---- sign out ------------------------------------------------------------------------------
    page.get_by_role("button", name="Open conversation list").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.request.get("/api/auth/me").status == 401
    page.set_viewport_size({"width": 1280, "height": 800})
    assert watched.dialogs == []


def readme_screenshot(page) -> None:
    """docs/screenshots/chat.png for the README: the chat screen, without the simulator's directives.

    Written when missing or when KEYLM_UPDATE_SCREENSHOTS=1, so a plain test run leaves the tracked
    picture alone (every run differs: emails, times).
    """
    target = REPO_ROOT / "docs" / "screenshots" / "chat.png"
    if target.exists() and os.environ.get("KEYLM_UPDATE_SCREENSHOTS") != "1":
        return
    page.evaluate(
        """() => {
            for (const bubble of document.querySelectorAll('#messages .msg-user .bubble')) {
                bubble.textContent = bubble.textContent.replace(/\\s*\\[\\[sim:[\\s\\S]*?\\]\\]/g, '').trim();
            }
            for (const name of document.querySelectorAll('#thread-list .thread-name, #chat-title')) {
                name.textContent = name.textContent.replace(/\\s*\\[\\[sim:[\\s\\S]*?\\]\\]/g, '').trim();
            }
        }"""
    )
    path = screenshot(page, "chat-readme")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
