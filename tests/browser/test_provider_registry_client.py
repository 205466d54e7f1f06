"""The web client builds its provider lists from GET /api/providers: a provider added to the registry
(OpenRouter, Mistral) gets a key tab, a place in the new-chat picker and a working chat, untouched."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.sync_api import expect

from shared.providers.registry import PROVIDERS, get_spec
from tests.browser.conftest import sign_up, unlabelled_controls

pytestmark = pytest.mark.browser


def test_registry_providers_get_tabs_hints_and_a_streamed_chat(page):
    sign_up(page)
    page.locator("#open-keys").click()
    dialog = page.get_by_role("dialog", name="API keys")
    tabs = dialog.get_by_role("tab")
    expect(tabs).to_have_count(len(PROVIDERS))
    expect(tabs).to_have_text([get_spec(p).display_name for p in PROVIDERS])

    # Mistral: the registry's placeholder and key page; a prefixless key is masked to its end only.
    dialog.get_by_role("tab", name="Mistral").click()
    key_input = dialog.get_by_label("Mistral API key")
    expect(key_input).to_have_attribute("placeholder", get_spec("mistral").key_placeholder)
    expect(dialog.locator("#key-input-where a")).to_have_attribute("href", get_spec("mistral").key_url)
    mistral_key = secrets.token_hex(16)
    key_input.fill(mistral_key)
    dialog.get_by_role("button", name="Validate and save").click()
    expect(dialog.locator("#key-list li")).to_have_count(1)
    expect(dialog.locator("#key-list .key-mask")).to_have_text("..." + mistral_key[-4:])

    # OpenRouter: a key of its shape, validated by the simulator's GET /key.
    dialog.get_by_role("tab", name="OpenRouter").click()
    openrouter_key = "sk-or-v1-" + secrets.token_hex(32)
    dialog.get_by_label("OpenRouter API key").fill(openrouter_key)
    dialog.get_by_role("button", name="Validate and save").click()
    saved = dialog.locator("#key-list li")
    expect(saved).to_have_count(1)
    expect(saved).to_contain_text("Active")
    assert openrouter_key not in page.content() and mistral_key not in page.content()
    assert unlabelled_controls(page) == []
    dialog.get_by_role("button", name="Close API keys").click()

    # The new-chat picker lists every registered provider; OpenRouter's catalog names its models.
    page.get_by_role("button", name="New chat").click()
    provider = page.get_by_label("Answered by")
    option_values = provider.locator("option").evaluate_all("(options) => options.map((o) => o.value)")
    assert option_values == ["free", *PROVIDERS]
    provider.select_option("openrouter")
    model = page.get_by_label("Model", exact=True)
    expect(model).to_be_visible()
    expect(model.locator("option[value='openai/gpt-4o-mini']")).to_have_count(1)
    values = model.locator("option").evaluate_all("(options) => options.map((o) => o.value)")
    assert "openai/gpt-4o-mini" in values and "openai/text-embedding-3-small" not in values
    model.select_option("openai/gpt-4o-mini")

    box = page.get_by_role("textbox", name="Message")
    box.fill("Hello router")
    box.press("Enter")
    reply = page.locator("#messages li.msg-assistant").last
    expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(reply.locator(".msg-body")).to_contain_text("Hello from the OpenRouter simulator")
    expect(page.locator("#chat-badges")).to_contain_text("OpenRouter")
    expect(reply.locator(".meta-tokens")).to_contain_text(re.compile(r"Total \d+ tokens"))

    # And a Mistral thread streams too.
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Answered by").select_option("mistral")
    expect(page.get_by_label("Model", exact=True)).to_be_visible()
    expect(page.locator("#setup-model option[value='mistral-small-latest']")).to_have_count(1)
    page.get_by_label("Model", exact=True).select_option("mistral-small-latest")
    page.get_by_role("textbox", name="Message").fill("Bonjour")
    page.get_by_role("textbox", name="Message").press("Enter")
    reply = page.locator("#messages li.msg-assistant").last
    expect(reply).to_have_attribute("data-status", "complete", timeout=20_000)
    expect(reply.locator(".msg-body")).to_contain_text("Hello from the Mistral simulator")
