"""Groq's OpenAI-compatible API."""

from __future__ import annotations

from typing import Any

from shared.providers import catalog
from shared.providers.base import ModelInfo
from shared.providers.openai import OpenAIAdapter


class GroqAdapter(OpenAIAdapter):
    """OpenAI wire format; usage may arrive three times (x_groq, finish chunk, usage chunk)."""

    name = "groq"

    def model_info(self, raw: Any) -> ModelInfo | None:
        """Active chat models only; Groq reports the context window itself."""
        model_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(model_id, str) or raw.get("active") is False:
            return None
        if any(word in model_id for word in catalog.GROQ_NON_CHAT):
            return None
        return ModelInfo(model_id, model_id, raw.get("context_window"))

    def is_reasoning_model(self, model: str) -> bool:
        """Groq accepts sampling settings for every model."""
        return False
