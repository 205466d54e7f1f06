"""The one set of secret shapes masked in logs and in provider messages.

Provider key shapes come from the provider registry (each provider declares its own); the rest are
the shapes of our own secrets and of secrets in headers, cookies, JSON fields and query strings.
"""

from __future__ import annotations

import functools
import re

MASK = "[REDACTED]"

_OUR_PATTERNS = [
    # OpenAI quotes a (partly masked) key in its 401 message, whatever its shape.
    re.compile(r"(?i)(?<=api key provided: )\S+"),
    re.compile(r"(?i)(?P<keep>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?i)(?P<keep>keylm_session=)[^;\s\"']+"),
    re.compile(
        r"(?i)(?P<keep>[\"']?(?:x-api-key|x-goog-api-key|x-keylm-internal|password|new_?password"
        r"|api_?key|token|secret|authorization|cookie)[\"']?\s*[:=]\s*[\"']?)"
        # A quoted value runs to its closing quote (spaces and escaped quotes included).
        r"(?:(?<=\")(?:[^\"\\]|\\.)+|(?<=')(?:[^'\\]|\\.)+|[^\"'&\s,;}]+)"
    ),
]


@functools.cache
def secret_patterns() -> tuple[re.Pattern[str], ...]:
    """Every provider's key shape, then ours (built once, on first use)."""
    # Imported here: the registry imports the adapters, which use this module.
    from shared.providers.registry import key_patterns

    return (*key_patterns(), *_OUR_PATTERNS)


def _mask(match: re.Match[str]) -> str:
    keep = match.group("keep") if "keep" in match.re.groupindex else ""
    return keep + MASK


def mask_secret_shapes(text: str) -> str:
    """Return text with every secret-shaped substring masked."""
    for pattern in secret_patterns():
        text = pattern.sub(_mask, text)
    return text
