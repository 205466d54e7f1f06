"""Mistral: OpenAI's chat-completions wire format on Mistral's own platform.

Differences from OpenAI that the adapter handles:
- `GET /models` marks chat models with `capabilities.completion_chat` and reports
  `max_context_length`; a model past its `deprecation` date is left out;
- the request is validated strictly (unknown fields are a 422), so the body uses `max_tokens` and
  no `stream_options`: usage arrives on the last chunk anyway;
- error bodies come in three shapes: `{"object": "error", "message", "type", "param", "code"}`,
  `{"message": ...}` from its gateway (401, 429), and `{"detail": ...}` (422 validation);
- keys are 32 letters and digits with no prefix, so no pattern can find one in free text: only the
  exact key is masked (in provider messages), and a key's mask shows none of its start.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from shared.providers.base import (
    AuthFailed,
    BadRequest,
    ChatMessage,
    ChatSettings,
    ModelInfo,
    ModelUnavailable,
    PermissionDenied,
    ProviderError,
    RateLimited,
    RawDocument,
    SSEEvent,
    StreamEvent,
    UpstreamError,
    parse_retry_after,
)
from shared.providers.openai import OpenAIAdapter
from shared.providers.registry import ProviderSpec


def mistral_error_message(payload: Any, default: str) -> str:
    """The message of any of Mistral's error shapes."""
    if not isinstance(payload, dict):
        return default
    message = payload.get("message")
    if isinstance(message, str) and message:
        return message
    detail = payload.get("detail", message)
    if isinstance(detail, dict):
        detail = detail.get("detail", detail.get("message"))
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list):
        parts = [item.get("msg") for item in detail if isinstance(item, dict)]
        if text := "; ".join(part for part in parts if isinstance(part, str)):
            return text
    error = payload.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return default


class MistralAdapter(OpenAIAdapter):
    """OpenAI's wire format with Mistral's model capabilities, strict body and error shapes."""

    name = "mistral"

    def model_info(self, raw: Any) -> ModelInfo | None:
        """Chat-capable, not yet deprecated models, with their context window."""
        model_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(model_id, str) or not model_id:
            return None
        capabilities = raw.get("capabilities")
        if not isinstance(capabilities, dict) or capabilities.get("completion_chat") is not True:
            return None
        deprecation = raw.get("deprecation")
        if isinstance(deprecation, str) and deprecation[:10] < dt.date.today().isoformat():
            return None
        context = raw.get("max_context_length")
        return ModelInfo(model_id, model_id, context if isinstance(context, int) else None)

    def is_reasoning_model(self, model: str) -> bool:
        """Every Mistral chat model takes temperature and top_p."""
        return False

    def chat_body(
        self, model: str, messages: list[ChatMessage], system_prompt: str | None, settings: ChatSettings
    ) -> dict[str, Any]:
        """OpenAI's body without the fields Mistral refuses (usage comes on the last chunk)."""
        body = super().chat_body(model, messages, system_prompt, settings)
        body.pop("stream_options", None)
        if "max_completion_tokens" in body:
            body["max_tokens"] = body.pop("max_completion_tokens")
        return body

    def decode_stream(self, items: Iterator[SSEEvent | RawDocument]) -> Iterator[StreamEvent]:
        """OpenAI's decoding, after turning an `"object": "error"` chunk into its error."""
        return super().decode_stream(self._raise_error_chunks(items))

    def _raise_error_chunks(
        self, items: Iterator[SSEEvent | RawDocument]
    ) -> Iterator[SSEEvent | RawDocument]:
        for item in items:
            if isinstance(item, SSEEvent) and '"error"' in item.data:
                try:
                    payload = json.loads(item.data)
                except ValueError:
                    payload = None
                if isinstance(payload, dict) and payload.get("object") == "error":
                    raise self.classify_error(None, payload, None)
            yield item

    def classify_error(self, status: int | None, payload: Any, headers: Any) -> ProviderError:
        """Map by status; a 400 naming an unknown model is a model error, not a bad request."""
        body = payload if isinstance(payload, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        kind = str(error.get("type") or "")
        message = mistral_error_message(payload, f"The provider answered HTTP {status}.")
        lowered = message.lower()
        if status == 401:
            return AuthFailed(message)
        if status == 403:
            return PermissionDenied(message)
        if status == 404 or kind == "invalid_model" or "invalid model" in lowered:
            return ModelUnavailable(message)
        if status == 429:
            return RateLimited(message, retry_after=parse_retry_after(headers))
        if status is None or status >= 500:
            return UpstreamError(message, code="overloaded" if status == 503 else None)
        return BadRequest(message)


SPEC = ProviderSpec(
    id="mistral",
    display_name="Mistral",
    adapter=MistralAdapter,
    default_base_url="https://api.mistral.ai/v1",
    key_placeholder="32 letters and digits",
    key_pattern=None,
    test_key_prefix="",
    key_url="https://console.mistral.ai/api-keys",
    monogram="M",
    color="#fa520f",
    simulator_path="/mistral/v1",
    simulator_blueprint="simulator.openai_compatible:make_blueprint",
    sample_model="mistral-small-latest",
    mask_head=0,
)
