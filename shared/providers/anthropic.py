"""Anthropic Messages API with named SSE events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shared.providers import catalog
from shared.providers.base import (
    DEFAULT_SETTINGS,
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
    RawDocument,
    SSEEvent,
    StreamEvent,
    TextDelta,
    UpstreamError,
    Usage,
    error_message,
    load_json,
    merge_turns,
    normalize_finish_reason,
    parse_retry_after,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
_MAX_PAGES = 100


class AnthropicAdapter(ProviderAdapter):
    """Anthropic `/messages`; usage from message_start/message_delta, end at message_stop."""

    name = "anthropic"
    page_size = 1000

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """x-api-key plus the required API version."""
        return {"x-api-key": api_key, "anthropic-version": API_VERSION}

    def validate_key(self, api_key: str) -> KeyCheck:
        """GET /models?limit=1 (free)."""
        return self.check_key("/models", api_key, {"limit": 1})

    def list_models(self, api_key: str) -> list[ModelInfo]:
        """All models, following `has_more`/`last_id` pages."""
        models: dict[str, ModelInfo] = {}
        params: dict[str, Any] = {"limit": self.page_size}
        for _ in range(_MAX_PAGES):
            body = self.get_json("/models", api_key, params)
            for raw in body.get("data") or []:
                if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                    window = raw.get("max_input_tokens") or catalog.context_window(
                        catalog.ANTHROPIC_CONTEXT_WINDOWS, raw["id"]
                    )
                    models[raw["id"]] = ModelInfo(raw["id"], raw.get("display_name") or raw["id"], window)
            last_id = body.get("last_id")
            if not body.get("has_more") or not last_id or last_id == params.get("after_id"):
                break
            params = {"limit": self.page_size, "after_id": last_id}
        return sorted(models.values(), key=lambda m: m.id)

    def chat_body(
        self, model: str, messages: list[ChatMessage], system_prompt: str | None, settings: ChatSettings
    ) -> dict[str, Any]:
        """The request body: alternating turns, required max_tokens, one sampling knob."""
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in merge_turns(messages)],
            "max_tokens": settings.max_tokens or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system_prompt:
            body["system"] = system_prompt
        # Current models reject temperature together with top_p; temperature wins.
        if settings.temperature is not None:
            body["temperature"] = min(max(settings.temperature, 0.0), 1.0)
        elif settings.top_p is not None:
            body["top_p"] = settings.top_p
        return body

    def stream_chat(
        self,
        api_key: str,
        *,
        model: str,
        messages: list[ChatMessage],
        system_prompt: str | None = None,
        settings: ChatSettings = DEFAULT_SETTINGS,
    ) -> ChatStream:
        """Stream a message; total tokens are computed as input + output."""
        body = self.chat_body(model, messages, system_prompt, settings)
        return self.open_stream("/messages", api_key, body, self.decode_stream)

    def decode_stream(self, items: Iterator[SSEEvent | RawDocument]) -> Iterator[StreamEvent]:
        """Turn message_start/content_block_delta/message_delta/message_stop into events."""
        message_id = model = stop_reason = None
        input_tokens = output_tokens = None
        for item in items:
            if isinstance(item, RawDocument):
                raise self.classify_error(None, item.payload, None)
            payload = load_json(item.data)
            # Dispatch on the JSON type so data-only recordings (no `event:` lines) work too.
            kind = payload.get("type") or item.event
            if item.event == "error" or kind == "error":
                raise self.classify_error(None, payload, None)
            if kind == "message_start":
                message = payload.get("message") or {}
                message_id, model = message.get("id"), message.get("model")
                usage = message.get("usage") or {}
                input_tokens = usage.get("input_tokens", input_tokens)
                output_tokens = usage.get("output_tokens", output_tokens)
            elif kind == "content_block_delta":
                delta = payload.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield TextDelta(delta["text"])
            elif kind == "message_delta":
                stop_reason = (payload.get("delta") or {}).get("stop_reason") or stop_reason
                # Cumulative values: message_delta supersedes message_start.
                usage = payload.get("usage") or {}
                input_tokens = usage.get("input_tokens", input_tokens)
                output_tokens = usage.get("output_tokens", output_tokens)
            elif kind == "message_stop":
                if input_tokens is not None and output_tokens is not None:
                    yield Usage(input_tokens, output_tokens, input_tokens + output_tokens)
                elif input_tokens is not None or output_tokens is not None:
                    yield Usage(input_tokens, output_tokens, None)
                yield Done(message_id, normalize_finish_reason(stop_reason), model)
                return
        raise UpstreamError("The provider stream ended before message_stop.", provider=self.name)

    def classify_error(self, status: int | None, payload: Any, headers: Any) -> ProviderError:
        """Map Anthropic's `error.type` (and the 400 credit-balance message) to a ProviderError."""
        error = payload.get("error") if isinstance(payload, dict) else None
        kind = (error or {}).get("type") if isinstance(error, dict) else None
        message = error_message(payload, f"The provider answered HTTP {status}.")
        if kind == "authentication_error" or (status == 401 and kind is None):
            return AuthFailed(message)
        if kind == "permission_error" or status == 403:
            return PermissionDenied(message)
        # Out of credit is a 400 invalid_request_error told apart only by its message.
        if "credit balance" in message.lower():
            return RateLimited(message, out_of_credit=True)
        if kind == "rate_limit_error" or status == 429:
            return RateLimited(message, retry_after=parse_retry_after(headers))
        if kind == "not_found_error" or status == 404:
            return ModelUnavailable(message)
        if kind == "overloaded_error" or status == 529:
            return UpstreamError(message, code="overloaded")
        if kind == "api_error" or status is None or status >= 500 or status in (408, 409):
            return UpstreamError(message)
        return BadRequest(message)
