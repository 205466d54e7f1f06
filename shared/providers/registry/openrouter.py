"""OpenRouter: one key for many vendors' models, over OpenAI's chat-completions wire format.

Differences from OpenAI that the adapter handles:
- the key is checked with `GET /key` (free, and it says nothing about models);
- `GET /models` lists every model with a display `name`, its `context_length` and its
  `architecture.output_modalities`; chat models are the ones that write text;
- an error body is `{"error": {"code": <HTTP status as a number>, "message", "metadata"}}`, and
  402 means the account is out of credit; an error after the stream started arrives as a chunk
  with that same `error` object (and `finish_reason: "error"`);
- the stream carries `: OPENROUTER PROCESSING` comment lines while a model warms up.
"""

from __future__ import annotations

from typing import Any

from shared.providers.base import (
    AuthFailed,
    BadRequest,
    ChatMessage,
    ChatSettings,
    KeyCheck,
    ModelInfo,
    ModelUnavailable,
    ProviderError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    error_message,
    parse_retry_after,
)
from shared.providers.openai import OpenAIAdapter
from shared.providers.registry import ProviderSpec


class OpenRouterAdapter(OpenAIAdapter):
    """OpenAI's wire format with OpenRouter's key check, model list and numeric error codes."""

    name = "openrouter"

    def validate_key(self, api_key: str) -> KeyCheck:
        """GET /key: answers 401 for a wrong or disabled key, and costs nothing."""
        return self.check_key("/key", api_key)

    def model_info(self, raw: Any) -> ModelInfo | None:
        """Models whose output is text; OpenRouter names them and reports the context length."""
        model_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(model_id, str) or not model_id:
            return None
        architecture = raw.get("architecture") if isinstance(raw.get("architecture"), dict) else {}
        outputs = architecture.get("output_modalities")
        if isinstance(outputs, list) and "text" not in outputs:
            return None
        name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name") else model_id
        context = raw.get("context_length")
        return ModelInfo(model_id, name, context if isinstance(context, int) else None)

    def is_reasoning_model(self, model: str) -> bool:
        """OpenRouter drops settings a routed model does not take; send them as given."""
        return False

    def chat_body(
        self, model: str, messages: list[ChatMessage], system_prompt: str | None, settings: ChatSettings
    ) -> dict[str, Any]:
        """OpenAI's body, with the output cap as `max_tokens` (the name every routed model takes)."""
        body = super().chat_body(model, messages, system_prompt, settings)
        if "max_completion_tokens" in body:
            body["max_tokens"] = body.pop("max_completion_tokens")
        return body

    def classify_error(self, status: int | None, payload: Any, headers: Any) -> ProviderError:
        """Map by HTTP status, or by the status in `error.code` for an error inside the stream."""
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        status = status or (code if isinstance(code, int) else None)
        message = error_message(payload, f"The provider answered HTTP {status}.")
        if status == 401:
            return AuthFailed(message)
        if status == 402:
            return RateLimited(message, out_of_credit=True)
        # An unknown id is a 400 ("... is not a valid model ID"); a model no provider serves, a 404.
        if status == 404 or "not a valid model" in message.lower():
            return ModelUnavailable(message)
        if status == 408:
            return UpstreamTimeout(message)
        if status == 429:
            return RateLimited(message, retry_after=parse_retry_after(headers))
        if status is None or status >= 500:
            return UpstreamError(message, code="overloaded" if status == 503 else None)
        # 400 (bad parameters) and 403 (the input was flagged by moderation): the key is fine.
        return BadRequest(message)


SPEC = ProviderSpec(
    id="openrouter",
    display_name="OpenRouter",
    adapter=OpenRouterAdapter,
    default_base_url="https://openrouter.ai/api/v1",
    key_placeholder="sk-or-v1-…",
    key_pattern=r"\bsk-or-[\w\-*.]{8,}",
    test_key_prefix="sk-or-v1-",
    key_url="https://openrouter.ai/settings/keys",
    monogram="R",
    color="#6467f2",
    simulator_path="/openrouter/api/v1",
    simulator_blueprint="simulator.openai_compatible:make_blueprint",
    sample_model="openai/gpt-4o-mini",
    hint="One key for models from many vendors; a model id names its vendor.",
)
