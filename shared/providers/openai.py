"""OpenAI chat completions (also the base of the Groq adapter)."""

from __future__ import annotations

import datetime as dt
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
    normalize_finish_reason,
    parse_retry_after,
    retry_after_from_message,
)


class OpenAIAdapter(ProviderAdapter):
    """OpenAI `/chat/completions` with data-only SSE ending in `[DONE]`."""

    name = "openai"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """Bearer auth."""
        return {"Authorization": f"Bearer {api_key}"}

    def validate_key(self, api_key: str) -> KeyCheck:
        """GET /models (free; OpenAI has no limit parameter)."""
        return self.check_key("/models", api_key)

    def list_models(self, api_key: str) -> list[ModelInfo]:
        """Chat-capable models from the mixed, unpaged /models list."""
        body = self.get_json("/models", api_key)
        models = {m.id: m for m in map(self.model_info, body.get("data") or []) if m}
        return sorted(models.values(), key=lambda m: m.id)

    def model_info(self, raw: Any) -> ModelInfo | None:
        """Normalise one list entry, or None when it is not a usable chat model."""
        model_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(model_id, str) or not catalog.is_openai_chat_model(model_id):
            return None
        shutdown = raw.get("shutdown_date")
        if isinstance(shutdown, str) and shutdown[:10] < dt.date.today().isoformat():
            return None
        return ModelInfo(model_id, model_id, catalog.context_window(catalog.OPENAI_CONTEXT_WINDOWS, model_id))

    def chat_body(
        self, model: str, messages: list[ChatMessage], system_prompt: str | None, settings: ChatSettings
    ) -> dict[str, Any]:
        """The request body for a streamed chat completion."""
        wire = [{"role": "system", "content": system_prompt}] if system_prompt else []
        for message in messages:
            if message.role not in ("user", "assistant"):
                raise ValueError(f"unsupported role {message.role!r}")
            wire.append({"role": message.role, "content": message.content})
        body: dict[str, Any] = {
            "model": model,
            "messages": wire,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if settings.max_tokens is not None:
            body["max_completion_tokens"] = settings.max_tokens
        if not self.is_reasoning_model(model):
            if settings.temperature is not None:
                body["temperature"] = settings.temperature
            if settings.top_p is not None:
                body["top_p"] = settings.top_p
        return body

    def is_reasoning_model(self, model: str) -> bool:
        """Reasoning models reject sampling settings other than the defaults."""
        return bool(catalog.OPENAI_REASONING_MODEL.match(model))

    def stream_chat(
        self,
        api_key: str,
        *,
        model: str,
        messages: list[ChatMessage],
        system_prompt: str | None = None,
        settings: ChatSettings = DEFAULT_SETTINGS,
    ) -> ChatStream:
        """Stream a chat completion; usage comes from the final `choices: []` chunk."""
        body = self.chat_body(model, messages, system_prompt, settings)
        return self.open_stream("/chat/completions", api_key, body, self.decode_stream)

    def decode_stream(self, items: Iterator[SSEEvent | RawDocument]) -> Iterator[StreamEvent]:
        """Turn chat.completion.chunk events into TextDelta, Usage and Done."""
        message_id = model = finish = None
        usage: Usage | None = None
        for item in items:
            if isinstance(item, RawDocument):
                raise self.classify_error(None, item.payload, None)
            if item.data.strip() == "[DONE]":
                if usage:
                    yield usage
                yield Done(message_id, normalize_finish_reason(finish), model)
                return
            chunk = load_json(item.data)
            if chunk.get("error"):
                raise self.classify_error(None, chunk, None)
            message_id = chunk.get("id") or message_id
            model = chunk.get("model") or model
            # Groq repeats the same usage up to three times; keep the last, never add them up.
            raw_usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
            if isinstance(raw_usage, dict):
                usage = Usage(
                    raw_usage.get("prompt_tokens"),
                    raw_usage.get("completion_tokens"),
                    raw_usage.get("total_tokens"),
                )
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                text = (choice.get("delta") or {}).get("content")
                if isinstance(text, str) and text:
                    yield TextDelta(text)
                finish = choice.get("finish_reason") or finish
        raise UpstreamError("The provider stream ended before [DONE].", provider=self.name)

    def classify_error(self, status: int | None, payload: Any, headers: Any) -> ProviderError:
        """Map an OpenAI-style error body by `code`/`type` first, then by HTTP status."""
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        code, kind = error.get("code") or "", error.get("type") or ""
        message = error_message(payload, f"The provider answered HTTP {status}.")
        lowered = message.lower()
        if code == "insufficient_quota" or kind == "insufficient_quota":
            return RateLimited(message, out_of_credit=True)
        if code == "invalid_api_key" or (status == 401 and "permission" not in lowered):
            return AuthFailed(message)
        if status in (401, 403) or code == "unsupported_country_region_territory":
            return PermissionDenied(message)
        if code in ("model_not_found", "model_decommissioned") or status == 404:
            return ModelUnavailable(message)
        if status in (429, 413, 498) or code == "rate_limit_exceeded":
            retry_after = parse_retry_after(headers) or retry_after_from_message(message)
            # A request larger than the per-minute budget can never pass on this model.
            return RateLimited(message, retry_after=retry_after, retryable=status != 413)
        if status is None or status >= 500 or status in (408, 409):
            overloaded = "overloaded" in lowered or status == 503
            return UpstreamError(message, code="overloaded" if overloaded else None)
        return BadRequest(message)
