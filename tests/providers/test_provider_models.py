"""Model lists: recorded answers are filtered, normalised and paged through."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from shared.providers import ModelInfo


def query(request):
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def test_openai_doc_example_has_no_chat_models(replay, transcripts):
    adapter, transport = replay("openai")
    transport.add((transcripts / "openai_models.json").read_bytes())
    assert adapter.list_models("k") == []
    assert transport.sent[0].url == "https://api.openai.com/v1/models"


def test_openai_list_keeps_chat_models_with_known_context_windows(replay):
    adapter, transport = replay("openai")
    ids = [
        "gpt-4o-mini",
        "o3",
        "text-embedding-3-small",
        "whisper-1",
        "gpt-4o-realtime-preview",
        "gpt-5",
        "dall-e-3",
        "gpt-3.5-turbo-instruct",
        "chatgpt-4o-latest",
        "tts-1",
        "gpt-4-0613",
    ]
    data = [
        {"id": i, "object": "model", "shutdown_date": "2020-01-01" if i == "gpt-4-0613" else None}
        for i in ids
    ]
    transport.add(json.dumps({"object": "list", "data": data}))
    assert adapter.list_models("k") == [
        ModelInfo("chatgpt-4o-latest", "chatgpt-4o-latest", 128_000),
        ModelInfo("gpt-4o-mini", "gpt-4o-mini", 128_000),
        ModelInfo("gpt-5", "gpt-5", 400_000),
        ModelInfo("o3", "o3", 200_000),
    ]


def test_anthropic_pager_follows_last_id_until_has_more_is_false(replay, transcripts):
    adapter, transport = replay("anthropic")
    transport.add((transcripts / "anthropic_models.json").read_bytes())
    transport.add(
        json.dumps(
            {
                "data": [
                    {
                        "id": "claude-3-haiku-20240307",
                        "type": "model",
                        "display_name": "Claude Haiku 3",
                        "created_at": "2024-03-07T00:00:00Z",
                    }
                ],
                "has_more": False,
                "first_id": "claude-3-haiku-20240307",
                "last_id": "claude-3-haiku-20240307",
            }
        )
    )
    models = adapter.list_models("k")
    assert [query(r) for r in transport.sent] == [
        {"limit": "1000"},
        {"limit": "1000", "after_id": "<string>"},
    ]
    assert models == [
        ModelInfo("claude-3-haiku-20240307", "Claude Haiku 3", 200_000),
        ModelInfo("claude-sonnet-4-20250514", "Claude Sonnet 4", 200_000),
    ]
    assert transport.sent[0].headers["anthropic-version"] == "2023-06-01"


def test_gemini_pager_requests_page_two_with_the_token(replay, transcripts):
    adapter, transport = replay("gemini")
    page_one = (transcripts / "gemini_models.json").read_bytes()
    transport.add(page_one)
    transport.add(
        json.dumps(
            {
                "models": [
                    {
                        "name": "models/gemini-2.5-flash",
                        "displayName": "Gemini 2.5 Flash",
                        "inputTokenLimit": 1048576,
                        "supportedGenerationMethods": ["generateContent"],
                    },
                    {
                        "name": "models/text-embedding-004",
                        "displayName": "Embedding",
                        "supportedGenerationMethods": ["embedContent"],
                    },
                    {
                        "name": "models/gemini-2.5-flash-preview-tts",
                        "displayName": "TTS",
                        "supportedGenerationMethods": ["generateContent"],
                    },
                ]
            }
        )
    )
    models = {m.id: m for m in adapter.list_models("k")}
    token = json.loads(page_one)["nextPageToken"]
    assert query(transport.sent[1]) == {"pageSize": "1000", "pageToken": token}
    assert models["gemini-2.0-flash"] == ModelInfo("gemini-2.0-flash", "Gemini 2.0 Flash", 1048576)
    assert "gemini-2.5-flash" in models
    assert "evergreen-custom" not in models  # UNSTABLE_EXPERIMENTAL internal entries are hidden
    assert not any(i.startswith("models/") for i in models)
    assert not {"text-embedding-004", "gemini-2.5-flash-preview-tts"} & set(models)
    assert list(models) == sorted(models)
    assert all("key" not in query(r) for r in transport.sent)
    assert transport.sent[0].headers["x-goog-api-key"] == "k"


def test_groq_list_drops_speech_and_guard_models(replay, transcripts):
    adapter, transport = replay("groq")
    transport.add((transcripts / "groq_models.json").read_bytes())
    assert adapter.list_models("k") == [
        ModelInfo("gemma2-9b-it", "gemma2-9b-it", 8192),
        ModelInfo("llama-3.1-8b-instant", "llama-3.1-8b-instant", 131072),
        ModelInfo("llama3-70b-8192", "llama3-70b-8192", 8192),
        ModelInfo("llama3-8b-8192", "llama3-8b-8192", 8192),
    ]
    assert transport.sent[0].url == "https://api.groq.com/openai/v1/models"


def test_model_info_to_dict_uses_api_names():
    assert ModelInfo("m", "M", 10).to_dict() == {"id": "m", "displayName": "M", "contextWindow": 10}
    assert ModelInfo("m", "M").to_dict()["contextWindow"] is None
