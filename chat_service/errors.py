"""chat_service's own errors (all in the shared envelope), and what a client sees for each kind of
provider failure."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import APIError, UpstreamUnavailable
from shared.providers import (
    AuthFailed,
    ModelUnavailable,
    PermissionDenied,
    ProviderError,
    RateLimited,
    UpstreamTimeout,
)


class RequestInProgress(APIError):
    status, code, retryable = 409, "request_in_progress", True
    message = "This message is still being answered; wait for it or send a new clientRequestId."


class UpstreamAuthFailed(APIError):
    status, code = 502, "upstream_auth_failed"


class UpstreamRateLimited(APIError):
    status, code = 502, "upstream_rate_limited"


class UpstreamFailed(APIError):
    status, code = 502, "upstream_error"


@dataclass(frozen=True)
class ProviderErrorRule:
    """One row of the table: an adapter error and the API error a client sees for it."""

    adapter_error: type[ProviderError]
    api_error: type[APIError]
    message: str  # `{message}`: the adapter's own message, which never holds the key
    retryable: bool | None  # None: what the adapter says
    out_of_credit: bool | None = None  # RateLimited only: billing exhaustion, or a rate limit

    def applies_to(self, error: ProviderError) -> bool:
        if not isinstance(error, self.adapter_error):
            return False
        return self.out_of_credit is None or getattr(error, "out_of_credit", False) == self.out_of_credit


# The first row that applies wins: subclasses before their base (PermissionDenied is an AuthFailed),
# and ProviderError last, for everything else (5xx, overload, a broken stream, a refused request).
PROVIDER_ERROR_RULES = (
    ProviderErrorRule(
        PermissionDenied,
        UpstreamAuthFailed,
        "The provider accepted this key but does not allow it this request.",
        retryable=False,
    ),
    ProviderErrorRule(
        AuthFailed, UpstreamAuthFailed, "The provider rejected this API key. Check or replace the key.", False
    ),
    ProviderErrorRule(
        RateLimited,
        UpstreamRateLimited,
        "The provider says this key is out of credit.",
        retryable=False,
        out_of_credit=True,
    ),
    ProviderErrorRule(
        RateLimited,
        UpstreamRateLimited,
        "The provider is rate limiting this key; try again shortly.",
        retryable=True,
        out_of_credit=False,
    ),
    ProviderErrorRule(UpstreamTimeout, UpstreamUnavailable, "The provider did not answer in time.", True),
    ProviderErrorRule(
        ModelUnavailable, UpstreamFailed, "The model is unavailable at the provider: {message}", False
    ),
    ProviderErrorRule(ProviderError, UpstreamFailed, "The provider answered with an error: {message}", None),
)


def api_error_for(error: ProviderError) -> APIError:
    """The envelope a client sees for a provider failure (never the key, never a stack trace)."""
    rule = next(rule for rule in PROVIDER_ERROR_RULES if rule.applies_to(error))
    retry_after = getattr(error, "retry_after", None)
    return rule.api_error(
        rule.message.format(message=error.message),
        retryable=error.retryable if rule.retryable is None else rule.retryable,
        details={"retryAfter": retry_after} if retry_after else None,
    )


class IdempotencyMismatch(APIError):
    status, code, retryable = 409, "idempotency_mismatch", False
    message = "This clientRequestId was already used for a different message; send a new clientRequestId."


class EmailNotVerified(APIError):
    status, code, retryable = 403, "email_not_verified", False
    message = "Confirm your email to use KeyLM Free: open the link we mailed you, or ask for a new one."
