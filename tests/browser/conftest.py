"""Browser tests: Debian's Chromium (through Playwright) against the real suite on SQLite.

One suite for the session, with a small KeyLM Free limit so a test can use it up; every test signs up its
own user. The pytest process never monkey-patches gevent: the services run as subprocesses.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from runner.suite import Suite
from tests.conftest import REPO_ROOT, unavailable
from tests.e2e.conftest import launch_suite

CHROMIUM = os.environ.get("KEYLM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FREE_LIMIT = 6
PASSWORD = "correct horse battery"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}

expect.set_options(timeout=10_000)
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser_suite(request, tmp_path_factory) -> Suite:
    """The real services, the provider simulator behind every provider, KeyLM Free limited to 6 a day."""
    vendor = REPO_ROOT / "gateway" / "static" / "vendor"
    if not (vendor / "marked.esm.js").exists():
        pytest.fail(
            "gateway/static/vendor/ is missing: run `npm ci --prefix web && node web/copy-vendor.js` "
            "(the Makefile's vendor step)"
        )
    return launch_suite(tmp_path_factory, request, "sqlite", "browser", FREE_USER_DAILY_LIMIT=str(FREE_LIMIT))


@pytest.fixture(scope="session")
def playwright_browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install playwright==1.65.2)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Watched:
    """What a page did that a test may assert on: dialogs opened, CSP violations, uncaught errors."""

    dialogs: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def context(playwright_browser, browser_suite):
    context = playwright_browser.new_context(
        base_url=browser_suite.url("gateway"), viewport=DESKTOP, locale="en-US", timezone_id="Europe/Paris"
    )
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context, watched) -> Iterator:
    page = context.new_page()

    def on_dialog(dialog):
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message):
        if "Content Security Policy" in message.text:
            watched.csp_violations.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    yield page
    assert not watched.page_errors, f"uncaught errors in the page: {watched.page_errors}"


def provider_down(suite: Suite, provider: str, down: bool) -> None:
    """Make the simulator answer 503 for every call to one provider (or bring it back)."""
    url = f"{suite.url('simulator')}/_sim/providers/{provider}/down"
    requests.post(url, json={"down": down}, timeout=5).raise_for_status()


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def unlabelled_controls(page) -> list[str]:
    """Visible buttons, links and form fields that a screen reader could not name."""
    return page.evaluate(
        """() => [...document.querySelectorAll('button, input, select, textarea, a[href], meter, [role=tab]')]
            .filter((e) => e.getClientRects().length > 0 && e.type !== 'hidden')
            .filter((e) => !(e.getAttribute('aria-label') || e.getAttribute('aria-labelledby')
                || (e.labels && e.labels.length) || (e.textContent || '').trim() || e.title))
            .map((e) => e.outerHTML.slice(0, 160))"""
    )


def new_email(prefix: str = "browser") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def sign_up(page, email: str | None = None, password: str = PASSWORD) -> str:
    """Register through the page and wait for the workspace."""
    email = email or new_email()
    page.goto("/")
    page.get_by_role("button", name="Create an account").click()
    form = page.locator("#register-form")
    form.get_by_label("Email").fill(email)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Create account").click()
    page.get_by_role("button", name="Sign out").wait_for()
    return email
