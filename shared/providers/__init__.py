"""Adapters for the upstream LLM providers: key checks, model lists and streamed chat."""

from __future__ import annotations

from typing import Any

from shared.providers.anthropic import AnthropicAdapter
from shared.providers.base import (
    PROVIDERS,
    AuthFailed,
    BadRequest,
    ChatMessage,
    ChatSettings,
    ChatStream,
    Done,
    KeyCheck,
    ModelInfo,
    ModelUnavailable,
    PermissionDenied,
    ProviderAdapter,
    ProviderError,
    RateLimited,
    StreamEvent,
    TextDelta,
    UpstreamError,
    UpstreamTimeout,
    Usage,
)
from shared.providers.gemini import GeminiAdapter
from shared.providers.groq import GroqAdapter
from shared.providers.openai import OpenAIAdapter

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta",
    "groq": "https://api.groq.com/openai/v1",
}

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "groq": GroqAdapter,
}


def get_adapter(provider: str, base_url: str | None = None, **kwargs: Any) -> ProviderAdapter:
    """Build the adapter for one provider; base_url defaults to the real provider's."""
    try:
        adapter_class = ADAPTERS[provider]
    except KeyError:
        raise ValueError(f"unknown provider {provider!r}") from None
    return adapter_class(base_url or DEFAULT_BASE_URLS[provider], **kwargs)


__all__ = [
    "ADAPTERS",
    "DEFAULT_BASE_URLS",
    "PROVIDERS",
    "AnthropicAdapter",
    "AuthFailed",
    "BadRequest",
    "ChatMessage",
    "ChatSettings",
    "ChatStream",
    "Done",
    "GeminiAdapter",
    "GroqAdapter",
    "KeyCheck",
    "ModelInfo",
    "ModelUnavailable",
    "OpenAIAdapter",
    "PermissionDenied",
    "ProviderAdapter",
    "ProviderError",
    "RateLimited",
    "StreamEvent",
    "TextDelta",
    "UpstreamError",
    "UpstreamTimeout",
    "Usage",
    "get_adapter",
]
