"""What one KeyLM Free request may cost: bounded output, prompt sizes and history, and a token estimate.

The free pool's key is shared, so every free thread is held to the configured ceilings: output
tokens (`FREE_MAX_OUTPUT_TOKENS`, larger requests are clamped), system prompt and message length,
and the characters of earlier turns resent on each send (oldest turns are dropped first). The
token estimate is what quota_service reserves from the user's daily token budget before the call;
the provider's reported usage settles it afterwards.
"""

from __future__ import annotations

import math
from typing import Any

from shared.config import Settings
from shared.errors import ValidationFailed
from shared.providers import ChatMessage

# A rough, provider-neutral rule of thumb: about four characters per token of English text, and a
# few tokens of framing per message. Only the reservation uses it; the provider's count settles.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def free_thread_settings(settings: Settings, requested: dict[str, Any]) -> dict[str, Any]:
    """A free thread's stored settings: `maxTokens` at most the ceiling, and a note when it was clamped."""
    ceiling = settings.free_max_output_tokens
    wanted = requested.get("maxTokens")
    bounded = {k: v for k, v in requested.items() if k != "maxTokens"}
    bounded["maxTokens"] = min(wanted, ceiling) if wanted else ceiling
    if wanted and wanted > ceiling:
        bounded["maxTokensClamped"] = True
        bounded["maxTokensRequested"] = wanted
    return bounded


def free_max_tokens(settings: Settings, stored: int | None) -> int:
    """The output ceiling of one free send, whatever the thread stored (the ceiling may have dropped)."""
    ceiling = settings.free_max_output_tokens
    return min(stored, ceiling) if stored else ceiling


def check_free_system_prompt(settings: Settings, system_prompt: str | None) -> None:
    """400 validation_error when a free thread's system prompt is over FREE_MAX_SYSTEM_PROMPT_CHARS."""
    limit = settings.free_max_system_prompt_chars
    if system_prompt and len(system_prompt) > limit:
        raise ValidationFailed({"systemPrompt": [f"KeyLM Free allows at most {limit} characters."]})


def check_free_message(settings: Settings, content: str) -> None:
    """400 validation_error when a free thread's message is over FREE_MAX_MESSAGE_CHARS."""
    limit = settings.free_max_message_chars
    if len(content) > limit:
        raise ValidationFailed({"content": [f"KeyLM Free allows at most {limit} characters."]})


def bound_history(earlier: list[ChatMessage], max_chars: int) -> tuple[list[ChatMessage], int]:
    """Drop the oldest turns (a user message and the replies after it) until the rest fits in
    `max_chars`; returns the kept messages and how many were dropped."""
    turns: list[list[ChatMessage]] = []
    for message in earlier:
        if message.role == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    total = sum(len(m.content) for m in earlier)
    dropped = 0
    while turns and total > max_chars:
        oldest = turns.pop(0)
        total -= sum(len(m.content) for m in oldest)
        dropped += len(oldest)
    return [m for turn in turns for m in turn], dropped


def estimate_prompt_tokens(system_prompt: str | None, messages: list[ChatMessage]) -> int:
    """A rough upper-side guess of the prompt's tokens (what the provider will count as input)."""
    chars = len(system_prompt or "") + sum(len(m.content) for m in messages)
    framing = TOKENS_PER_MESSAGE * (len(messages) + (1 if system_prompt else 0))
    return math.ceil(chars / CHARS_PER_TOKEN) + framing


def tokens_used(usage: dict[str, Any] | None, prompt_estimate: int, reply_text: str) -> int:
    """The tokens one free request cost: the provider's count, or an estimate when it sent none
    (a stopped stream, a provider that reports no usage)."""
    if usage:
        total = usage.get("totalTokens")
        if total is None and (usage.get("promptTokens") is not None or usage.get("outputTokens") is not None):
            total = (usage.get("promptTokens") or 0) + (usage.get("outputTokens") or 0)
        if total is not None:
            return max(0, int(total))
    return prompt_estimate + math.ceil(len(reply_text) / CHARS_PER_TOKEN)
