"""What each adapter sends: URL, auth header, roles, system prompt and mapped settings."""

from __future__ import annotations

import json

import pytest

from shared.providers import ChatMessage, ChatSettings, get_adapter
from shared.providers.base import RawDocument, SSEEvent, iter_sse

HISTORY = [
    ChatMessage("assistant", "Welcome!"),
    ChatMessage("user", "Hi"),
    ChatMessage("user", "there"),
    ChatMessage("assistant", "Hello! How can I help?"),
    ChatMessage("user", "Say hi in Portuguese"),
]


def sent_body(replay, provider, model, settings=None, system="Be brief.", messages=HISTORY):
    adapter, transport = replay(provider)
    transport.add(b"", headers={"content-type": "text/event-stream"})
    adapter.stream_chat(
        "secret-key-123",
        model=model,
        messages=messages,
        system_prompt=system,
        settings=settings or ChatSettings(),
    ).close()
    request = transport.sent[0]
    return request, json.loads(request.body)


def test_openai_maps_settings_and_requests_usage(replay):
    request, body = sent_body(
        replay, "openai", "gpt-4o-mini", ChatSettings(temperature=0.3, max_tokens=50, top_p=0.9)
    )
    assert request.url == "https://api.openai.com/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer secret-key-123"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in body["messages"][1:]] == [m.role for m in HISTORY]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    assert (body["temperature"], body["top_p"]) == (0.3, 0.9)


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "o3", "o4-mini", "o1"])
def test_openai_reasoning_models_get_no_sampling_settings(replay, model):
    _, body = sent_body(replay, "openai", model, ChatSettings(temperature=0.3, top_p=0.5, max_tokens=9))
    assert "temperature" not in body and "top_p" not in body
    assert body["max_completion_tokens"] == 9


def test_groq_is_openai_format_with_sampling_kept(replay):
    request, body = sent_body(
        replay, "groq", "openai/gpt-oss-120b", ChatSettings(temperature=0.2, max_tokens=7)
    )
    assert request.url == "https://api.groq.com/openai/v1/chat/completions"
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 7
    assert body["stream_options"] == {"include_usage": True}


def test_anthropic_merges_turns_clamps_temperature_and_sends_one_sampling_knob(replay):
    request, body = sent_body(
        replay, "anthropic", "claude-sonnet-4-5", ChatSettings(temperature=1.7, top_p=0.5)
    )
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "secret-key-123"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": "Hi\n\nthere"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Say hi in Portuguese"},
    ]
    assert body["max_tokens"] == 1024
    assert body["temperature"] == 1.0 and "top_p" not in body


def test_anthropic_sends_top_p_when_temperature_is_unset(replay):
    _, body = sent_body(replay, "anthropic", "claude-haiku-4-5", ChatSettings(top_p=0.4, max_tokens=64))
    assert body["top_p"] == 0.4 and "temperature" not in body and body["max_tokens"] == 64


def test_gemini_uses_header_key_model_role_and_generation_config(replay):
    request, body = sent_body(
        replay, "gemini", "gemini-2.5-flash", ChatSettings(temperature=0.5, top_p=0.8, max_tokens=100)
    )
    assert request.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert "secret-key-123" not in request.url
    assert request.headers["x-goog-api-key"] == "secret-key-123"
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"] == [{"text": "Hi\n\nthere"}]
    assert body["generationConfig"] == {"temperature": 0.5, "topP": 0.8, "maxOutputTokens": 100}


def test_gemini_without_settings_or_system_sends_neither(replay):
    _, body = sent_body(
        replay, "gemini", "models/gemini-2.5-pro", system=None, messages=[ChatMessage("user", "x")]
    )
    assert body == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}


def test_unknown_role_is_a_programming_error(replay):
    with pytest.raises(ValueError):
        sent_body(replay, "openai", "gpt-4o", messages=[ChatMessage("system", "x")])


def test_get_adapter_defaults_to_the_real_base_urls():
    assert get_adapter("gemini").base_url == "https://generativelanguage.googleapis.com/v1beta"
    with pytest.raises(ValueError):
        get_adapter("no-such-provider", "http://x")


def test_sse_parser_handles_crlf_comments_multiline_data_and_eof_dispatch():
    raw = (
        b": keep-alive\r\n\r\nevent: a\r\ndata: one\r\ndata:two\r\n\r\n"
        b'data: {"x": 1}\n\n{\n  "error": {"code": 1}\n}\ndata: last'
    )
    events = list(iter_sse(raw[i : i + 1] for i in range(len(raw))))
    assert events == [
        SSEEvent("a", "one\ntwo"),
        SSEEvent(None, '{"x": 1}'),
        RawDocument({"error": {"code": 1}}),
        SSEEvent(None, "last"),
    ]


def test_sse_parser_decodes_utf8_split_across_chunks():
    raw = "data: Olá 日本\n\n".encode()
    assert list(iter_sse([raw[:8], raw[8:11], raw[11:]])) == [SSEEvent(None, "Olá 日本")]
