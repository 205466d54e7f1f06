"""Adapters for the upstream LLM providers: key checks, model lists and streamed chat."""

from __future__ import annotations

from shared.providers.anthropic import AnthropicAdapter
from shared.providers.base import (
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

# Last: the registry's modules import the adapters above.
from shared.providers.registry import PROVIDERS, SPECS, ProviderSpec, get_adapter, get_spec  # noqa: E402

__all__ = [
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
    "ProviderSpec",
    "RateLimited",
    "SPECS",
    "StreamEvent",
    "TextDelta",
    "UpstreamError",
    "UpstreamTimeout",
    "Usage",
    "get_adapter",
    "get_spec",
]
