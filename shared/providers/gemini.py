"""Google Gemini (Generative Language API, AI Studio key)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

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
    parse_duration,
    parse_retry_after,
)

_MAX_PAGES = 100
_DETAIL = "type.googleapis.com/google.rpc."


def _details(error: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [d for d in error.get("details") or [] if isinstance(d, dict) and d.get("@type") == _DETAIL + kind]


class GeminiAdapter(ProviderAdapter):
    """Gemini `:streamGenerateContent?alt=sse`; CRLF framing, no end sentinel."""

    name = "gemini"
    page_size = 1000

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The key goes in a header, never in the URL (URLs end up in logs)."""
        return {"x-goog-api-key": api_key}

    def validate_key(self, api_key: str) -> KeyCheck:
        """GET /models?pageSize=1 (free)."""
        return self.check_key("/models", api_key, {"pageSize": 1})

    def list_models(self, api_key: str) -> list[ModelInfo]:
        """generateContent models, following `nextPageToken`, without the `models/` prefix."""
        models: dict[str, ModelInfo] = {}
        params: dict[str, Any] = {"pageSize": self.page_size}
        for _ in range(_MAX_PAGES):
            body = self.get_json("/models", api_key, params)
            for raw in body.get("models") or []:
                info = self.model_info(raw)
                if info:
                    models[info.id] = info
            token = body.get("nextPageToken")
            if not token or token == params.get("pageToken"):
                break
            params = {"pageSize": self.page_size, "pageToken": token}
        return sorted(models.values(), key=lambda m: m.id)

    def model_info(self, raw: Any) -> ModelInfo | None:
        """Normalise one entry, or None for embedding/image/audio/internal models."""
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            return None
        model_id = raw["name"].removeprefix("models/")
        if "generateContent" not in (raw.get("supportedGenerationMethods") or []):
            return None
        if any(word in model_id for word in catalog.GEMINI_NON_CHAT):
            return None
        if raw.get("modelStage") in catalog.GEMINI_HIDDEN_STAGES:
            return None
        return ModelInfo(model_id, raw.get("displayName") or model_id, raw.get("inputTokenLimit"))

    def chat_body(
        self, messages: list[ChatMessage], system_prompt: str | None, settings: ChatSettings
    ) -> dict[str, Any]:
        """Request body: user/model turns, systemInstruction and generationConfig."""
        body: dict[str, Any] = {
            "contents": [
                {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
                for m in merge_turns(messages)
            ]
        }
        if system_prompt:
            body["systemInstruction"] = {"parts": [{"text": system_prompt}]}
        config = {
            key: value
            for key, value in (
                ("temperature", settings.temperature),
                ("topP", settings.top_p),
                ("maxOutputTokens", settings.max_tokens),
            )
            if value is not None
        }
        if config:
            body["generationConfig"] = config
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
        """Stream generateContent; usage is the last cumulative usageMetadata."""
        path = f"/models/{quote(model.removeprefix('models/'), safe='')}:streamGenerateContent"
        body = self.chat_body(messages, system_prompt, settings)
        return self.open_stream(path, api_key, body, self.decode_stream, params={"alt": "sse"})

    def decode_stream(self, items: Iterator[SSEEvent | RawDocument]) -> Iterator[StreamEvent]:
        """Turn GenerateContentResponse chunks into events; the stream just ends at EOF."""
        response_id = model = finish = None
        usage: Usage | None = None
        for item in items:
            chunk = item.payload if isinstance(item, RawDocument) else load_json(item.data)
            if not isinstance(chunk, dict):
                raise UpstreamError("The provider sent a malformed stream chunk.")
            if chunk.get("error"):
                raise self.classify_error(None, chunk, None)
            response_id = chunk.get("responseId") or response_id
            model = chunk.get("modelVersion") or model
            meta = chunk.get("usageMetadata")
            if isinstance(meta, dict):
                # Cumulative on every chunk: keep the last. Billed output includes thinking.
                output = None
                if "candidatesTokenCount" in meta or "thoughtsTokenCount" in meta:
                    output = meta.get("candidatesTokenCount", 0) + meta.get("thoughtsTokenCount", 0)
                usage = Usage(meta.get("promptTokenCount"), output, meta.get("totalTokenCount"))
            candidates = chunk.get("candidates") or []
            if not candidates and (chunk.get("promptFeedback") or {}).get("blockReason"):
                finish = "SAFETY"
            if candidates and isinstance(candidates[0], dict):
                candidate = candidates[0]
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if isinstance(part, dict) and not part.get("thought") and part.get("text"):
                        yield TextDelta(part["text"])
                finish = candidate.get("finishReason") or finish
        # No end sentinel: a stream is complete only if some chunk carried a finishReason.
        if finish is None:
            raise UpstreamError("The provider stream ended without a finish reason.", provider=self.name)
        if usage:
            yield usage
        yield Done(response_id, normalize_finish_reason(finish), model)

    def classify_error(self, status: int | None, payload: Any, headers: Any) -> ProviderError:
        """Map a google.rpc.Status body; a bad key is a 400 with reason API_KEY_INVALID."""
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        status = status or (error.get("code") if isinstance(error.get("code"), int) else None)
        state = error.get("status") or ""
        message = error_message(payload, f"The provider answered HTTP {status}.")
        reasons = {d.get("reason") for d in _details(error, "ErrorInfo")}
        lowered = message.lower()
        if "API_KEY_INVALID" in reasons or (
            status == 400
            and "api key" in lowered
            and ("not valid" in lowered or "expired" in lowered or "not found" in lowered)
        ):
            return AuthFailed(message)
        if status == 403 or state == "PERMISSION_DENIED":
            if "leaked" in lowered:
                return AuthFailed(message)
            return PermissionDenied(message)
        if status == 429 or state == "RESOURCE_EXHAUSTED":
            retry_after = parse_retry_after(headers)
            for info in _details(error, "RetryInfo"):
                retry_after = parse_duration(info.get("retryDelay")) or retry_after
            # A per-day free-tier quota resets at midnight Pacific: waiting a minute cannot help.
            daily = any(
                "PerDay" in (v.get("quotaId") or "")
                for f in _details(error, "QuotaFailure")
                for v in f.get("violations") or []
            )
            return RateLimited(message, retry_after=retry_after, retryable=not daily)
        if status == 404 or state == "NOT_FOUND":
            return ModelUnavailable(message)
        if status is None or status >= 500 or status in (408, 409, 499):
            overloaded = state == "UNAVAILABLE" or "overloaded" in lowered
            return UpstreamError(message, code="overloaded" if overloaded else None)
        return BadRequest(message)
