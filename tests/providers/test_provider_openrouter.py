"""OpenRouter (shared/providers/registry/openrouter.py) against its simulator fixture and its error table."""

from __future__ import annotations

import json

import pytest

from shared.providers import (
    AuthFailed,
    BadRequest,
    ChatMessage,
    ChatSettings,
    KeyCheck,
    ModelUnavailable,
    RateLimited,
    TextDelta,
    UpstreamError,
    UpstreamTimeout,
    get_adapter,
)
from shared.providers.registry import get_spec

KEY = "sk-or-v1-" + "0123456789abcdef" * 4


def test_the_key_is_checked_with_get_key_not_the_model_list(sim):
    adapter = sim.adapter("openrouter")
    assert adapter.validate_key(KEY) is KeyCheck.VALID
    assert adapter.validate_key("sk-or-v1-invalid-1") is KeyCheck.INVALID
    assert [r["path"] for r in sim.requests_log("openrouter")] == ["/openrouter/api/v1/key"] * 2


def test_the_catalog_keeps_text_models_with_names_and_context_lengths(sim):
    models = {m.id: m for m in sim.adapter("openrouter").list_models(KEY)}
    assert "openai/text-embedding-3-small" not in models  # writes embeddings, not text
    assert models["openai/gpt-4o-mini"].display_name == "OpenAI: GPT-4o-mini"
    assert models["openai/gpt-4o-mini"].context_window == 128000
    assert models["meta-llama/llama-3.3-70b-instruct:free"].context_window == 65536
    assert list(models) == sorted(models)


def test_a_chat_streams_through_the_processing_comments_with_usage(sim):
    adapter = sim.adapter("openrouter")
    stream = adapter.stream_chat(
        KEY,
        model="anthropic/claude-sonnet-4.5",
        messages=[ChatMessage("user", "[[sim:echo]] hi")],
        settings=ChatSettings(max_tokens=300, temperature=0.2),
    )
    events = list(stream)
    echo = json.loads("".join(e.text for e in events if isinstance(e, TextDelta)))
    # The output cap goes by the name every routed model takes; settings are sent as given.
    assert echo["settings"]["max_tokens"] == 300 and "max_completion_tokens" not in echo["settings"]
    assert echo["settings"]["temperature"] == 0.2
    assert events[-1].finish_reason == "stop"


def test_an_unknown_model_id_is_a_model_error_not_a_bad_request(sim):
    with pytest.raises(ModelUnavailable) as caught:
        sim.adapter("openrouter").stream_chat(KEY, model="nobody/none", messages=[ChatMessage("user", "hi")])
    assert caught.value.status == 400 and "not a valid model ID" in caught.value.message


def test_an_error_inside_the_stream_carries_the_provider_message(sim):
    adapter = sim.adapter("openrouter")
    stream = adapter.stream_chat(
        KEY, model="openai/gpt-4o-mini", messages=[ChatMessage("user", "[[sim:tokens=4]] [[sim:fail_mid=2]]")]
    )
    with pytest.raises(UpstreamError) as caught:
        list(stream)
    assert caught.value.message == "Provider returned error"


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (401, AuthFailed, "auth_failed"),
        (402, RateLimited, "out_of_credit"),
        # A flagged input is refused; the key itself is fine (not an auth failure).
        (403, BadRequest, "bad_request"),
        (404, ModelUnavailable, "model_unavailable"),
        (408, UpstreamTimeout, "upstream_timeout"),
        (429, RateLimited, "rate_limited"),
        (502, UpstreamError, "upstream_error"),
        (503, UpstreamError, "overloaded"),
        (400, BadRequest, "bad_request"),
    ],
)
def test_error_table(status, error_type, code):
    adapter = get_adapter("openrouter")
    error = adapter.classify_error(status, {"error": {"code": status, "message": "m"}}, {"retry-after": "3"})
    assert type(error) is error_type and error.code == code
    assert not (status == 402 and error.retryable)
    if status == 429:
        assert error.retry_after == 3.0


def test_a_mid_stream_error_takes_its_status_from_the_error_code():
    error = get_adapter("openrouter").classify_error(
        None, {"error": {"code": 402, "message": "no credit"}}, None
    )
    assert isinstance(error, RateLimited) and error.out_of_credit


def test_registry_declares_the_public_api_and_a_key_shape_that_redaction_finds():
    spec = get_spec("openrouter")
    assert spec.default_base_url == "https://openrouter.ai/api/v1"
    from shared.providers.base import redact

    assert KEY not in redact(f"bad key {KEY}")
