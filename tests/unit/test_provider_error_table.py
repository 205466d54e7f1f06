"""chat_service.errors.PROVIDER_ERROR_RULES: each kind of adapter error reaches the client as the
right envelope, and no message ever holds the key."""

from __future__ import annotations

import pytest

from chat_service.errors import PROVIDER_ERROR_RULES, api_error_for
from shared.errors import UpstreamUnavailable
from shared.providers import (
    AuthFailed,
    BadRequest,
    ModelUnavailable,
    PermissionDenied,
    ProviderError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

KEY = "sk-proj-secretsecretsecret1234"

# adapter error -> (status, code, retryable, message, details)
CASES = [
    (
        PermissionDenied("scope missing"),
        (
            502,
            "upstream_auth_failed",
            False,
            "The provider accepted this key but does not allow it this request.",
        ),
        None,
    ),
    (
        AuthFailed("bad key"),
        (502, "upstream_auth_failed", False, "The provider rejected this API key. Check or replace the key."),
        None,
    ),
    (
        RateLimited("slow down", retry_after=2.5),
        (502, "upstream_rate_limited", True, "The provider is rate limiting this key; try again shortly."),
        {"retryAfter": 2.5},
    ),
    (
        RateLimited("no money", out_of_credit=True),
        (502, "upstream_rate_limited", False, "The provider says this key is out of credit."),
        None,
    ),
    (
        UpstreamTimeout("read timed out"),
        (503, "upstream_unavailable", True, "The provider did not answer in time."),
        None,
    ),
    (
        ModelUnavailable("model gone"),
        (502, "upstream_error", False, "The model is unavailable at the provider: model gone"),
        None,
    ),
    (
        UpstreamError("overloaded", status=529),
        (502, "upstream_error", True, "The provider answered with an error: overloaded"),
        None,
    ),
    (
        BadRequest("temperature not supported"),
        (502, "upstream_error", False, "The provider answered with an error: temperature not supported"),
        None,
    ),
    (
        ProviderError(f"odd failure with {KEY}"),
        (502, "upstream_error", False, "The provider answered with an error: odd failure with [REDACTED]"),
        None,
    ),
]


@pytest.mark.parametrize(("error", "expected", "details"), CASES, ids=lambda v: getattr(v, "code", None))
def test_each_adapter_error_maps_to_its_api_error(error, expected, details):
    api_error = api_error_for(error)
    status, code, retryable, message = expected
    assert (api_error.status, api_error.code, api_error.retryable) == (status, code, retryable)
    assert api_error.message == message
    assert KEY not in api_error.message
    assert api_error.details == details
    if code == "upstream_unavailable":
        assert isinstance(api_error, UpstreamUnavailable)


def test_every_rule_is_reachable_and_the_last_catches_everything():
    covered = {next(i for i, r in enumerate(PROVIDER_ERROR_RULES) if r.applies_to(e)) for e, _, _ in CASES}
    assert covered == set(range(len(PROVIDER_ERROR_RULES)))
    assert PROVIDER_ERROR_RULES[-1].adapter_error is ProviderError
