"""Model lists the simulated providers return, non-chat entries included on purpose."""

from __future__ import annotations

from typing import Any


def _openai(
    model_id: str, chat: bool = True, owner: str = "system", shutdown: str | None = None
) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": 1715367049,
        "owned_by": owner,
        "shutdown_date": shutdown,
        "chat": chat,
    }


OPENAI_MODELS = [
    _openai("gpt-4o"),
    _openai("gpt-4o-mini"),
    _openai("gpt-4o-2024-08-06"),
    _openai("gpt-4.1"),
    _openai("gpt-4.1-mini"),
    _openai("gpt-4.1-nano"),
    _openai("gpt-5"),
    _openai("gpt-5-mini"),
    _openai("gpt-5-nano"),
    _openai("o3"),
    _openai("o3-mini"),
    _openai("o4-mini"),
    _openai("o1"),
    _openai("chatgpt-4o-latest"),
    _openai("gpt-3.5-turbo", owner="openai"),
    _openai("gpt-4-0613", owner="openai", shutdown="2025-06-06"),
    _openai("gpt-3.5-turbo-instruct", chat=False),
    _openai("davinci-002", chat=False),
    _openai("babbage-002", chat=False),
    _openai("text-embedding-3-small", chat=False),
    _openai("text-embedding-3-large", chat=False),
    _openai("whisper-1", chat=False),
    _openai("tts-1", chat=False),
    _openai("tts-1-hd", chat=False),
    _openai("gpt-4o-mini-tts", chat=False),
    _openai("gpt-4o-transcribe", chat=False),
    _openai("dall-e-3", chat=False),
    _openai("gpt-image-1", chat=False),
    _openai("omni-moderation-latest", chat=False),
    _openai("gpt-4o-realtime-preview", chat=False),
    _openai("gpt-4o-audio-preview", chat=False),
    _openai("gpt-4o-search-preview", chat=False),
    _openai("computer-use-preview", chat=False),
]


def _groq(
    model_id: str,
    owner: str,
    context: int,
    active: bool = True,
    chat: bool = True,
    max_completion: int | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": 1693721698,
        "owned_by": owner,
        "active": active,
        "context_window": context,
        "public_apps": None,
        "chat": chat,
    }
    if max_completion:
        entry["max_completion_tokens"] = max_completion
    return entry


GROQ_DECOMMISSIONED = {"moonshotai/kimi-k2-instruct-0905"}

GROQ_MODELS = [
    _groq("llama-3.1-8b-instant", "Meta", 131072, max_completion=131072),
    _groq("llama-3.3-70b-versatile", "Meta", 131072, max_completion=32768),
    _groq("openai/gpt-oss-120b", "OpenAI", 131072, max_completion=65536),
    _groq("openai/gpt-oss-20b", "OpenAI", 131072, max_completion=65536),
    _groq("qwen/qwen3-32b", "Alibaba Cloud", 131072, max_completion=40960),
    _groq("meta-llama/llama-4-scout-17b-16e-instruct", "Meta", 131072, max_completion=8192),
    _groq("groq/compound", "Groq", 131072, max_completion=8192),
    _groq("groq/compound-mini", "Groq", 131072, max_completion=8192),
    # Listed but retired: chat answers 400 model_decommissioned.
    _groq("moonshotai/kimi-k2-instruct-0905", "Moonshot AI", 262144, active=False, max_completion=16384),
    _groq("whisper-large-v3", "OpenAI", 448, chat=False),
    _groq("whisper-large-v3-turbo", "OpenAI", 448, chat=False),
    _groq("playai-tts", "PlayAI", 8192, chat=False),
    _groq("canopylabs/orpheus-v1-english", "Canopy Labs", 4000, chat=False),
    _groq("meta-llama/llama-guard-4-12b", "Meta", 131072, chat=False),
    _groq("meta-llama/llama-prompt-guard-2-86m", "Meta", 512, chat=False),
]


def _claude(model_id: str, name: str, created: str) -> dict[str, Any]:
    return {"created_at": created, "display_name": name, "id": model_id, "type": "model"}


# Newest first, as the real API lists them.
ANTHROPIC_MODELS = [
    _claude("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    _claude("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    _claude("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01T00:00:00Z"),
    _claude("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    _claude("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    _claude("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
    _claude("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22T00:00:00Z"),
    _claude("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
    _claude("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24T00:00:00Z"),
    _claude("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
    _claude("claude-3-5-sonnet-20241022", "Claude Sonnet 3.5 (New)", "2024-10-22T00:00:00Z"),
    _claude("claude-3-5-sonnet-20240620", "Claude Sonnet 3.5 (Old)", "2024-06-20T00:00:00Z"),
    _claude("claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07T00:00:00Z"),
    _claude("claude-3-opus-20240229", "Claude Opus 3", "2024-02-29T00:00:00Z"),
]

# Aliases resolve to a dated id in `message.model`, as on the real API.
ANTHROPIC_ALIASES = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}

_GEMINI_CHAT = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]


def _gemini(
    name: str,
    display: str,
    methods: list[str] | None = None,
    context: int = 1048576,
    output: int = 65536,
    thinking: bool = False,
    stage: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"models/{name}",
        "version": "001",
        "displayName": display,
        "description": display,
        "inputTokenLimit": context,
        "outputTokenLimit": output,
        "supportedGenerationMethods": methods or _GEMINI_CHAT,
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    }
    if thinking:
        entry["thinking"] = True
    if stage:
        entry["modelStage"] = stage
    return entry


GEMINI_MODELS = [
    _gemini(
        "gemini-exp-internal-01",
        "Internal experiment",
        ["generateContent", "countTokens"],
        stage="UNSTABLE_EXPERIMENTAL",
    ),
    _gemini("gemini-2.0-flash", "Gemini 2.0 Flash", output=8192, stage="LEGACY"),
    _gemini("gemini-2.0-flash-lite", "Gemini 2.0 Flash-Lite", output=8192, stage="LEGACY"),
    _gemini("gemini-2.5-pro", "Gemini 2.5 Pro", thinking=True),
    _gemini("gemini-2.5-flash", "Gemini 2.5 Flash", thinking=True),
    _gemini("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", thinking=True),
    _gemini("gemini-2.5-flash-preview-tts", "Gemini 2.5 Flash Preview TTS", context=8192, output=16384),
    _gemini("gemini-2.5-flash-image", "Nano Banana", context=32768, output=32768),
    _gemini("gemini-2.0-flash-live-001", "Gemini 2.0 Flash 001 Live", ["bidiGenerateContent", "countTokens"]),
    _gemini("gemini-3-pro-preview", "Gemini 3 Pro Preview", thinking=True),
    _gemini("gemini-flash-latest", "Gemini Flash Latest", thinking=True),
    _gemini("gemma-3-27b-it", "Gemma 3 27B", ["generateContent", "countTokens"], context=131072, output=8192),
    _gemini("gemma-3-4b-it", "Gemma 3 4B", ["generateContent", "countTokens"], context=32768, output=8192),
    _gemini("embedding-001", "Embedding 001", ["embedContent"], context=2048, output=1),
    _gemini("text-embedding-004", "Text Embedding 004", ["embedContent"], context=2048, output=1),
    _gemini(
        "gemini-embedding-001",
        "Gemini Embedding 001",
        ["embedContent", "countTextTokens", "countTokens"],
        context=2048,
        output=1,
    ),
    _gemini(
        "aqa",
        "Model that performs Attributed Question Answering.",
        ["generateAnswer"],
        context=7168,
        output=1024,
    ),
    _gemini("imagen-4.0-generate-001", "Imagen 4", ["predict"], context=480, output=8192),
    _gemini("veo-3.0-generate-001", "Veo 3", ["predictLongRunning"], context=480, output=8192),
]

# Served modelVersion differs from the requested alias, as on the real API.
GEMINI_SERVED_AS = {
    "gemini-3-pro-preview": "gemini-3.1-pro-preview",
    "gemini-flash-latest": "gemini-2.5-flash",
}
GEMINI_THOUGHT_TOKENS = 12
