"""Static model facts the provider APIs do not report: chat-capable filters and context windows."""

from __future__ import annotations

import re

# OpenAI's /models has no capability flags; these id rules follow peer apps (docs/providers.md, OpenAI).
OPENAI_CHAT_PREFIX = re.compile(r"^(gpt-|chatgpt-|o\d)")
OPENAI_NON_CHAT = (
    "tts",
    "whisper",
    "embedding",
    "dall-e",
    "image",
    "moderation",
    "audio",
    "realtime",
    "transcribe",
    "search",
    "computer-use",
    "instruct",
    "codex",
    "davinci",
    "babbage",
)

# Longest matching prefix wins. Sizes are the providers' published input windows (approximate).
OPENAI_CONTEXT_WINDOWS = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "chatgpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1-mini": 128_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
}

ANTHROPIC_CONTEXT_WINDOWS = {"claude-": 200_000}

GEMINI_NON_CHAT = ("embedding", "aqa", "imagen", "veo", "-tts", "image", "live", "native-audio")
# Google's own list carries internal test models marked with this stage (docs/providers.md, Gemini).
GEMINI_HIDDEN_STAGES = ("UNSTABLE_EXPERIMENTAL",)

GROQ_NON_CHAT = ("whisper", "tts", "guard", "orpheus")

# OpenAI reasoning models reject temperature/top_p other than the defaults (docs/providers.md, OpenAI).
OPENAI_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


def context_window(table: dict[str, int], model_id: str) -> int | None:
    """Context window of the longest table prefix matching model_id, or None."""
    matches = [prefix for prefix in table if model_id.startswith(prefix)]
    return table[max(matches, key=len)] if matches else None


def is_openai_chat_model(model_id: str) -> bool:
    """True for chat-completions models in OpenAI's mixed list."""
    return bool(OPENAI_CHAT_PREFIX.match(model_id)) and not any(word in model_id for word in OPENAI_NON_CHAT)
