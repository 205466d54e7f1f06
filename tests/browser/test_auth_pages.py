"""Sign up, sign in, sign out, forgot password and the reset page, driven through Chromium."""

from __future__ import annotations

import re
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, new_email, screenshot, sign_up

pytestmark = pytest.mark.browser


def test_sign_up_sign_out_and_sign_in_again(page, watched):
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")
    email = sign_up(page)
    expect(page.locator("#account-email")).to_have_text(email)
    expect(page.get_by_role("heading", name="Start a conversation")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#auth-notice")).to_have_text("You are signed out.")
    assert page.request.get("/api/auth/me").status == 401

    login = page.locator("#login-form")
    login.get_by_label("Email").fill(email.upper())  # emails compare case-insensitively
    login.get_by_label("Password").fill(PASSWORD)
    login.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-email")).to_have_text(email)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.reload()
    expect(page.locator("#account-email")).to_have_text(email)  # the session cookie survives a reload
    assert watched.csp_violations == []


def test_auth_errors_show_the_envelope_message_and_field_errors(page):
    email = sign_up(page)
    page.get_by_role("button", name="Sign out").click()

    login = page.locator("#login-form")
    login.get_by_label("Email").fill(email)
    login.get_by_label("Password").fill("not the password")
    login.get_by_role("button", name="Sign in").click()
    expect(login.locator(".form-error")).to_be_visible()
    expect(login.locator(".form-error")).not_to_be_empty()

    page.get_by_role("button", name="Create an account").click()
    register = page.locator("#register-form")
    register.get_by_label("Email").fill(email)
    register.get_by_label("Password").fill(PASSWORD)
    register.get_by_role("button", name="Create account").click()
    expect(register.locator(".form-error")).to_be_visible()  # 409 email_taken, its message
    expect(register.locator(".form-error")).not_to_be_empty()

    # The server's details.fields land under the field they name (too long a password: 129 characters).
    register.get_by_label("Email").fill(new_email())
    register.get_by_label("Password").fill("x" * 129)
    register.get_by_role("button", name="Create account").click()
    expect(page.locator("#register-password-error")).to_contain_text("128")
    expect(register.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "sign-up-errors")


def _reset_link(outbox: Path, email: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout  # the mail is sent by a background job
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml"), reverse=True):
            mail = message_from_bytes(path.read_bytes(), policy=policy.default)
            if mail["To"] == email:
                body = mail.get_body(("plain",)).get_content()
                return re.search(r"https?://\S+/reset\?token=[^\s]+", body).group(0)
        time.sleep(0.1)
    raise AssertionError(f"no reset mail for {email} in {outbox}")


def test_forgot_password_and_the_reset_page(page, browser_suite):
    email = sign_up(page)
    page.get_by_role("button", name="Sign out").click()

    page.get_by_role("button", name="Forgot password?").click()
    page.locator("#forgot-form").get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send reset link").click()
    expect(page.locator("#auth-notice")).to_contain_text("reset link")

    link = _reset_link(Path(browser_suite.env["KEYLM_VAR_DIR"]) / "outbox", email)
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    reset = page.locator("#reset-form")
    reset.get_by_label("New password", exact=True).fill("a brand new secret")
    reset.get_by_label("Repeat new password").fill("a different one")
    reset.get_by_role("button", name="Set new password").click()
    expect(page.locator("#reset-confirm-error")).to_have_text("The two passwords do not match.")
    reset.get_by_label("Repeat new password").fill("a brand new secret")
    screenshot(page, "reset-password")
    reset.get_by_role("button", name="Set new password").click()
    expect(page.locator("#auth-notice")).to_contain_text("password has been changed")
    assert page.url.endswith("/")

    login = page.locator("#login-form")
    login.get_by_label("Email").fill(email)
    login.get_by_label("Password").fill("a brand new secret")
    login.get_by_role("button", name="Sign in").click()
    expect(page.locator("#account-email")).to_have_text(email)

    # The link is spent: using it again shows the server's invalid_token message.
    page.get_by_role("button", name="Sign out").click()
    page.goto(link)
    reset.get_by_label("New password", exact=True).fill("yet another secret")
    reset.get_by_label("Repeat new password").fill("yet another secret")
    reset.get_by_role("button", name="Set new password").click()
    expect(reset.locator(".form-error")).to_be_visible()
    expect(reset.locator(".form-error")).not_to_be_empty()
