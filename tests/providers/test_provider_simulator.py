"""The adapters against the real simulator process (gunicorn + gevent on loopback)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from shared.providers import (
    PROVIDERS,
    AuthFailed,
    ChatMessage,
    ChatSettings,
    KeyCheck,
    ModelUnavailable,
    RateLimited,
    TextDelta,
    UpstreamError,
    UpstreamTimeout,
    Usage,
)
from shared.providers.registry import SPECS

KEY = "sk-test-0123456789abcdef"
# Each registered provider's sample model (Anthropic's smallest here), and its name in replies.
MODELS = {**{spec.id: spec.sample_model for spec in SPECS.values()}, "anthropic": "claude-haiku-4-5"}
LABELS = {spec.id: spec.display_name for spec in SPECS.values()}
each_provider = pytest.mark.parametrize("provider", PROVIDERS)


def chat(
    sim, provider, text, *, key=KEY, system=None, settings=None, history=(), model=None, **adapter_kwargs
):
    adapter = sim.adapter(provider, **adapter_kwargs)
    messages = [*history, ChatMessage("user", text)]
    return adapter.stream_chat(
        key,
        model=model or MODELS[provider],
        messages=messages,
        system_prompt=system,
        settings=settings or ChatSettings(),
    )


def collect(stream):
    events = list(stream)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    usage = next((e for e in events if isinstance(e, Usage)), None)
    return text, usage, events[-1]


@each_provider
def test_validate_key_reports_valid_invalid_and_unavailable(sim, provider):
    adapter = sim.adapter(provider)
    assert adapter.validate_key(KEY) is KeyCheck.VALID
    assert adapter.validate_key("sk-test-invalid-1") is KeyCheck.INVALID
    assert adapter.validate_key("sk-test-down-1") is KeyCheck.UNAVAILABLE
    assert adapter.validate_key("sk-test-ratelimit-1") is KeyCheck.UNAVAILABLE


@each_provider
def test_revoked_key_and_downed_provider_are_seen_by_validation(sim, provider):
    adapter = sim.adapter(provider)
    sim.control("POST", "/keys/revoke", {"key": KEY})
    assert adapter.validate_key(KEY) is KeyCheck.INVALID
    assert adapter.validate_key(KEY + "-other") is KeyCheck.VALID
    sim.control("POST", f"/providers/{provider}/down", {"down": True})
    assert adapter.validate_key(KEY + "-other") is KeyCheck.UNAVAILABLE
    sim.control("POST", f"/providers/{provider}/down", {"down": False})
    assert adapter.validate_key(KEY + "-other") is KeyCheck.VALID


def test_validate_key_is_unavailable_when_nothing_listens():
    from shared.providers import get_adapter

    adapter = get_adapter("openai", "http://127.0.0.1:9", connect_timeout=0.5)
    assert adapter.validate_key(KEY) is KeyCheck.UNAVAILABLE


EXPECTED_MODELS = {
    "openai": [
        "chatgpt-4o-latest",
        "gpt-3.5-turbo",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "gpt-4o-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
    ],
    "groq": [
        "groq/compound",
        "groq/compound-mini",
        "llama-3.1-8b-instant",
        "llama-3.3-70b-versatile",
        "meta-llama/llama-4-scout-17b-16e-instruct",
        "openai/gpt-oss-120b",
        "openai/gpt-oss-20b",
        "qwen/qwen3-32b",
    ],
    "gemini": [
        "gemini-2.0-flash",
        "gemini-2.0-flash-lite",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.5-pro",
        "gemini-3-pro-preview",
        "gemini-flash-latest",
        "gemma-3-27b-it",
        "gemma-3-4b-it",
    ],
}


@pytest.mark.parametrize("provider", ["openai", "groq", "gemini"])
def test_list_models_returns_only_chat_models(sim, provider):
    models = sim.adapter(provider).list_models(KEY)
    assert [m.id for m in models] == EXPECTED_MODELS[provider]
    if provider != "openai":
        assert all(m.context_window for m in models)


def test_list_models_pages_through_anthropic_and_gemini(sim):
    anthropic = sim.adapter("anthropic")
    anthropic.page_size = 5
    claude = anthropic.list_models(KEY)
    assert len(claude) == 14 and claude == sorted(claude, key=lambda m: m.id)
    assert {m.display_name for m in claude} >= {"Claude Sonnet 4.5", "Claude Opus 3"}
    gemini = sim.adapter("gemini")
    gemini.page_size = 4
    assert [m.id for m in gemini.list_models(KEY)] == EXPECTED_MODELS["gemini"]
    paths = [r["path"] for r in sim.requests_log()]
    assert paths.count("/anthropic/v1/models") == 3
    assert paths.count("/gemini/v1beta/models") == 5
    assert sim.control("GET", "/stats")["model_list_calls"] == {"anthropic": 3, "gemini": 5}


@each_provider
def test_list_models_with_invalid_key_raises_auth_failed(sim, provider):
    with pytest.raises(AuthFailed):
        sim.adapter(provider).list_models("sk-invalid-zzz")


@each_provider
def test_stream_chat_yields_text_usage_and_done(sim, provider):
    text, usage, done = collect(chat(sim, provider, "hi there", system="Be nice."))
    assert text == f"Hello from the {LABELS[provider]} simulator. You said: hi there"
    # Prompt = 4 words (system + user); output = 9 word tokens (+ simulated thinking on Gemini).
    thinking = 12 if provider == "gemini" else 0
    assert usage == Usage(4, 9 + thinking, 4 + 9 + thinking)
    assert done.finish_reason == "stop"
    assert done.provider_message_id
    record = sim.requests_log(provider)[-1]
    assert record["state"] == "completed" and record["tokens_sent"] == 9
    assert sim.control("GET", "/stats")["chat_calls"] == {provider: 1}


@each_provider
def test_echo_shows_system_prompt_history_and_mapped_settings(sim, provider):
    history = [ChatMessage("user", "first"), ChatMessage("assistant", "reply one")]
    settings = ChatSettings(temperature=0.5, max_tokens=500)
    text, _, _ = collect(
        chat(sim, provider, "[[sim:echo]] now", system="SYS", history=history, settings=settings)
    )
    echo = json.loads(text)
    assert echo["system"] == "SYS"
    assert echo["messages"] == [["user", "first"], ["assistant", "reply one"], ["user", "[[sim:echo]] now"]]
    max_name = {
        "openai": "max_completion_tokens",
        "groq": "max_completion_tokens",
        "anthropic": "max_tokens",
        "gemini": "maxOutputTokens",
    }.get(provider, "max_tokens")  # OpenAI-compatible providers take the classic name
    assert echo["settings"][max_name] == 500
    assert echo["settings"]["temperature"] == 0.5


def test_reasoning_model_gets_no_temperature_and_reports_reasoning_usage(sim):
    text, usage, done = collect(
        chat(
            sim,
            "openai",
            "[[sim:echo]]",
            model="gpt-5",
            settings=ChatSettings(temperature=0.2, max_tokens=300),
        )
    )
    assert "temperature" not in json.loads(text)["settings"]
    assert usage.output_tokens > len(text.split())  # hidden reasoning tokens are counted
    assert done.finish_reason == "stop"


@each_provider
def test_exact_text_with_multibyte_characters_survives_the_wire(sim, provider):
    text, _, _ = collect(chat(sim, provider, "[[sim:text=Olá, ação! 日本語 🚀 end]]"))
    assert text == "Olá, ação! 日本語 🚀 end"


@each_provider
def test_max_tokens_truncates_with_length_finish(sim, provider):
    text, usage, done = collect(chat(sim, provider, "[[sim:tokens=20]]", settings=ChatSettings(max_tokens=5)))
    assert done.finish_reason == "length"
    assert len(text.split()) == 5


def test_gemini_thought_parts_from_the_simulator_are_not_text(sim):
    text, usage, _ = collect(chat(sim, "gemini", "[[sim:thoughts]] hi"))
    assert "Thinking" not in text and text.startswith("Hello from the Gemini")


@each_provider
def test_fail_before_first_token_raises_retryable_upstream_error(sim, provider):
    with pytest.raises(UpstreamError) as caught:
        chat(sim, provider, "[[sim:fail_before]]")
    assert caught.value.retryable and caught.value.status >= 500


@each_provider
def test_fail_mid_stream_raises_after_partial_text(sim, provider):
    stream = chat(sim, provider, "[[sim:tokens=6]] [[sim:fail_mid=3]]")
    seen = []
    with pytest.raises(UpstreamError):
        for event in stream:
            seen.append(event)
    assert len(seen) == 3 and all(isinstance(e, TextDelta) for e in seen)
    assert sim.wait_for_state(sim.last_stream_id(provider))["state"] == "failed"


@each_provider
def test_stream_cut_without_terminator_raises_upstream_error(sim, provider):
    stream = chat(sim, provider, "[[sim:tokens=6]] [[sim:cut=2]]")
    with pytest.raises(UpstreamError):
        list(stream)


@each_provider
def test_rate_limit_directive_raises_rate_limited_with_retry_after(sim, provider):
    with pytest.raises(RateLimited) as caught:
        chat(sim, provider, "[[sim:429]]")
    assert caught.value.retry_after == 2.0 and not caught.value.out_of_credit


@each_provider
def test_unknown_model_raises_model_unavailable(sim, provider):
    with pytest.raises(ModelUnavailable):
        chat(sim, provider, "hi", model="no-such-model-1")


def test_groq_decommissioned_model_raises_model_unavailable_and_fallbacks_work(sim):
    with pytest.raises(ModelUnavailable) as caught:
        chat(sim, "groq", "hi", model="moonshotai/kimi-k2-instruct-0905")
    assert caught.value.status == 400 and "decommissioned" in caught.value.message
    for model in ("openai/gpt-oss-120b", "llama-3.1-8b-instant"):
        text, _, done = collect(chat(sim, "groq", "hi", model=model))
        assert text and done.finish_reason == "stop"


@each_provider
def test_silent_provider_after_headers_raises_timeout_and_is_seen_closed(sim, provider):
    stream = chat(sim, provider, "[[sim:hang]]", read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        list(stream)
    assert time.monotonic() - started < 3
    assert sim.wait_for_state(sim.last_stream_id(provider))["state"] == "client_closed"


def test_silence_before_headers_raises_timeout(sim):
    with pytest.raises(UpstreamTimeout):
        chat(sim, "anthropic", "[[sim:hang_before=3000]]", read_timeout=0.3)


@each_provider
def test_closing_a_stream_early_is_seen_by_the_simulator(sim, provider):
    stream = chat(sim, provider, "[[sim:tokens=2000]] [[sim:delay=20]]")
    assert isinstance(next(stream), TextDelta)
    stream_id = sim.last_stream_id(provider)
    stream.close()
    record = sim.wait_for_state(stream_id, timeout=2.0)
    assert record["state"] == "client_closed"
    assert record["tokens_sent"] < 2000
    assert sim.control("GET", "/stats")["open_streams"] == 0


def test_stream_id_header_matches_the_simulator_record(sim):
    response = requests.post(
        sim.base_url("openai") + "/chat/completions",
        timeout=5,
        headers={"Authorization": f"Bearer {KEY}"},
        json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    stream_id = response.headers["x-sim-stream-id"]
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert sim.stream_state(stream_id)["state"] == "completed"


@each_provider
def test_api_key_never_shows_in_errors_reprs_or_the_simulator_log(sim, provider):
    secret = "sk-SECRET-invalid-9f8e7d6c5b4a"
    adapter = sim.adapter(provider)
    with pytest.raises(AuthFailed) as caught:
        chat(sim, provider, "hi", key=secret)
    shown = [str(caught.value), repr(caught.value), repr(adapter), str(vars(adapter))]
    stream = chat(sim, provider, "[[sim:fail_mid=1]]", key=secret.replace("invalid", "ok"))
    with pytest.raises(UpstreamError) as mid:
        list(stream)
    shown += [str(mid.value), repr(mid.value), repr(stream), str(vars(stream))]
    shown.append(json.dumps(sim.requests_log()))
    for text in shown:
        assert "SECRET" not in text


def test_parallel_streams_are_served_concurrently(sim):
    streams = [chat(sim, p, "[[sim:tokens=20]] [[sim:delay=25]]") for p in PROVIDERS * 2]
    started = time.monotonic()
    for stream in streams:
        list(stream)
    # Two 0.5 s streams per provider run side by side on one gevent worker: far less than in turn.
    assert time.monotonic() - started < 2.5
