"""With FREE_REQUIRE_VERIFIED_EMAIL on, the web page shows that the email is unconfirmed, can send
the link again, and the mailed link confirms it (the banner goes, KeyLM Free answers)."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from runner.suite import Suite
from tests.browser.conftest import screenshot, sign_up
from tests.e2e.conftest import launch_suite

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser_suite(request, tmp_path_factory) -> Suite:
    """This module's own suite: KeyLM Free needs a confirmed email."""
    return launch_suite(
        tmp_path_factory, request, "sqlite", "browser-verify", FREE_REQUIRE_VERIFIED_EMAIL="true"
    )


def confirmation_links(suite: Suite, email: str) -> list[str]:
    outbox = Path(suite.env["KEYLM_VAR_DIR"]) / "outbox"
    links = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        if mail["To"] == email:
            body = mail.get_body(("plain",)).get_content()
            links += [word for word in body.split() if "/verify-email?token=" in word]
    return links


def test_unconfirmed_email_banner_resend_and_the_mailed_link(page, browser_suite, watched):
    email = sign_up(page)
    banner = page.locator("#verify-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Confirm your email to use KeyLM Free.")
    expect(banner).to_contain_text(email)
    screenshot(page, "verify-email-banner")

    # A free message is refused with the reason, and nothing is lost: the banner stays.
    box = page.get_by_role("textbox", name="Message")
    box.fill("Hello before confirming")
    box.press("Enter")
    expect(page.locator("#messages .meta-error")).to_contain_text("Confirm your email")
    expect(banner).to_be_visible()

    page.get_by_role("button", name="Send the link again").click()
    expect(page.locator("#toast")).to_contain_text(f"A new confirmation link is on its way to {email}.")
    links = confirmation_links(browser_suite, email)
    assert len(links) == 2

    parts = urlsplit(links[-1])
    page.goto(f"{parts.path}?{parts.query}")
    expect(page.locator("#toast")).to_contain_text("Your email is confirmed")
    expect(page.locator("#account-email")).to_have_text(email)
    expect(banner).to_be_hidden()
    assert urlsplit(page.url).path == "/"

    # The used link, opened again, says so.
    page.goto(f"{parts.path}?{parts.query}")
    expect(page.locator("#toast")).to_contain_text("invalid, used or expired")
    expect(banner).to_be_hidden()
    assert watched.csp_violations == []


def test_the_link_opened_while_signed_out_confirms_and_asks_to_sign_in(page, browser_suite):
    email = sign_up(page)
    page.get_by_role("button", name="Sign out").click()
    [link] = confirmation_links(browser_suite, email)

    parts = urlsplit(link)
    page.goto(f"{parts.path}?{parts.query}")

    expect(page.locator("#auth-notice")).to_have_text("Your email is confirmed: KeyLM Free is yours to use.")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
