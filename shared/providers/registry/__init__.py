"""The provider registry: one module per provider declares everything KeyLM needs to know about it.

Each module in PROVIDER_MODULES defines `SPEC`, a ProviderSpec. Services, the simulator, the log
redaction, the configuration, the web client (through `GET /api/providers`) and the test helpers all
read the registry; adding a provider is one new module here plus its name in PROVIDER_MODULES.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.providers.base import ProviderAdapter

# The registry's list, in the order the web client shows the providers.
PROVIDER_MODULES = ("openai", "anthropic", "gemini", "groq", "openrouter", "mistral")


@dataclass(frozen=True)
class ProviderSpec:
    """Everything that differs from one provider to the next."""

    id: str
    display_name: str
    adapter: type[ProviderAdapter]
    default_base_url: str
    # The key: what its field shows as a placeholder, and the regex of its shape (log redaction);
    # None for keys with no recognisable shape (only the exact key is then masked).
    key_placeholder: str
    key_pattern: str | None
    # Test keys: a prefix the provider really uses (security tests check these are redacted).
    test_key_prefix: str
    # Where a user creates a key, and a short monogram and colour for the client's badge.
    key_url: str
    monogram: str
    color: str
    # The simulator: its mount path and a "module:factory" that builds its blueprint from the id.
    simulator_path: str
    simulator_blueprint: str
    # A chat model the simulator lists (tests chat with it).
    sample_model: str
    # Characters of a key's start shown in its mask (its end shows the last 4).
    mask_head: int = 3
    # One line under the provider picker, e.g. what the key is billed for.
    hint: str = ""

    @property
    def base_url_variable(self) -> str:
        """The environment variable that points this provider at a proxy or the simulator."""
        return f"{self.id.upper()}_BASE_URL"

    def public_metadata(self) -> dict[str, Any]:
        """What the web client needs (served at GET /api/providers); nothing secret or internal."""
        return {
            "id": self.id,
            "name": self.display_name,
            "keyPlaceholder": self.key_placeholder,
            "keyUrl": self.key_url,
            "monogram": self.monogram,
            "color": self.color,
            "hint": self.hint,
        }


def _load() -> dict[str, ProviderSpec]:
    specs: dict[str, ProviderSpec] = {}
    for name in PROVIDER_MODULES:
        spec = importlib.import_module(f"{__name__}.{name}").SPEC
        if spec.id != name:
            raise RuntimeError(f"registry module {name} declares provider {spec.id!r}")
        specs[name] = spec
    return specs


SPECS: dict[str, ProviderSpec] = _load()
PROVIDERS: tuple[str, ...] = tuple(SPECS)


def get_spec(provider: str) -> ProviderSpec:
    """The spec of one provider, or ValueError for an unknown id."""
    try:
        return SPECS[provider]
    except KeyError:
        raise ValueError(f"unknown provider {provider!r}") from None


def get_adapter(provider: str, base_url: str | None = None, **kwargs: Any) -> ProviderAdapter:
    """Build the adapter for one provider; base_url defaults to the real provider's."""
    spec = get_spec(provider)
    return spec.adapter(base_url or spec.default_base_url, **kwargs)


def key_patterns() -> list[re.Pattern[str]]:
    """The key shape of every provider, compiled (the redaction's provider part)."""
    return [re.compile(spec.key_pattern) for spec in SPECS.values() if spec.key_pattern]


def public_providers() -> list[dict[str, Any]]:
    """Every provider's public metadata, in display order."""
    return [spec.public_metadata() for spec in SPECS.values()]


def load_factory(reference: str) -> Callable[..., Any]:
    """Resolve a "module:attribute" reference (the simulator's blueprint factories)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


__all__ = [
    "PROVIDERS",
    "PROVIDER_MODULES",
    "SPECS",
    "ProviderSpec",
    "get_adapter",
    "get_spec",
    "key_patterns",
    "load_factory",
    "public_providers",
]
