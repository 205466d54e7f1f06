"""Every recorded (or documented) error answer maps to the right ProviderError subclass."""

from __future__ import annotations

import json

import pytest

from shared.providers import (
    AuthFailed,
    BadRequest,
    ChatMessage,
    KeyCheck,
    ModelUnavailable,
    PermissionDenied,
    RateLimited,
    UpstreamError,
)
from shared.providers.base import parse_duration, parse_retry_after, redact


def body(**error):
    return json.dumps({"error": error})


# (provider, transcript file or inline body, status, headers, class, expected attributes)
ERROR_TABLE = [
    ("openai", "openai_401.json", 401, {}, AuthFailed, {"retryable": False}),
    (
        "openai",
        "openai_429_insufficient_quota.json",
        429,
        {},
        RateLimited,
        {"out_of_credit": True, "retryable": False, "code": "out_of_credit"},
    ),
    ("openai", "openai_400_max_tokens_unsupported.json", 400, {}, BadRequest, {}),
    (
        "openai",
        body(
            message="Rate limit reached for gpt-4o-mini. Please try again in 20ms.",
            type="requests",
            param=None,
            code="rate_limit_exceeded",
        ),
        429,
        {"retry-after-ms": "1500", "retry-after": "2"},
        RateLimited,
        {"retry_after": 1.5, "out_of_credit": False, "retryable": True},
    ),
    (
        "openai",
        body(
            message="The model `gpt-9` does not exist or you do not have access to it.",
            type="invalid_request_error",
            param=None,
            code="model_not_found",
        ),
        404,
        {},
        ModelUnavailable,
        {},
    ),
    (
        "openai",
        body(
            message="You have insufficient permissions for this operation. Missing scopes: model.request.",
            type="invalid_request_error",
        ),
        401,
        {},
        PermissionDenied,
        {},
    ),
    (
        "openai",
        body(message="The server had an error", type="server_error"),
        500,
        {},
        UpstreamError,
        {"retryable": True, "code": "upstream_error"},
    ),
    (
        "openai",
        body(message="The engine is currently overloaded", type="server_error"),
        503,
        {},
        UpstreamError,
        {"code": "overloaded"},
    ),
    ("anthropic", "anthropic_401.json", 401, {}, AuthFailed, {}),
    (
        "anthropic",
        "anthropic_400_credit_balance.json",
        400,
        {},
        RateLimited,
        {"out_of_credit": True, "retryable": False},
    ),
    ("anthropic", "anthropic_404.json", 404, {}, ModelUnavailable, {}),
    (
        "anthropic",
        "anthropic_429.json",
        429,
        {"retry-after": "7"},
        RateLimited,
        {"retry_after": 7.0, "out_of_credit": False},
    ),
    (
        "anthropic",
        '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
        529,
        {},
        UpstreamError,
        {"code": "overloaded", "retryable": True},
    ),
    (
        "anthropic",
        '{"type":"error","error":{"type":"permission_error","message":"no"}}',
        403,
        {},
        PermissionDenied,
        {},
    ),
    (
        "anthropic",
        '{"type":"error","error":{"type":"invalid_request_error","message":"messages: Field required"}}',
        400,
        {},
        BadRequest,
        {},
    ),
    ("gemini", "gemini_400_invalid_key.json", 400, {}, AuthFailed, {}),
    ("gemini", "gemini_403_api_not_enabled.json", 403, {}, PermissionDenied, {}),
    ("gemini", "gemini_404_unknown_model.json", 404, {}, ModelUnavailable, {}),
    ("gemini", "gemini_429_quota.json", 429, {}, RateLimited, {"retry_after": None}),
    (
        "gemini",
        body(
            code=429,
            message="You exceeded your current quota",
            status="RESOURCE_EXHAUSTED",
            details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}],
        ),
        429,
        {},
        RateLimited,
        {"retry_after": 34.4, "retryable": True},
    ),
    (
        "gemini",
        body(
            code=429,
            message="quota",
            status="RESOURCE_EXHAUSTED",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
                }
            ],
        ),
        429,
        {},
        RateLimited,
        {"retryable": False},
    ),
    (
        "gemini",
        body(code=503, message="The model is overloaded. Please try again later.", status="UNAVAILABLE"),
        503,
        {},
        UpstreamError,
        {"code": "overloaded"},
    ),
    (
        "gemini",
        body(
            code=403,
            message="Your API key was reported as leaked. Please use another API key.",
            status="PERMISSION_DENIED",
        ),
        403,
        {},
        AuthFailed,
        {"code": "auth_failed"},
    ),
    (
        "gemini",
        body(code=400, message="Please ensure that multiturn requests alternate.", status="INVALID_ARGUMENT"),
        400,
        {},
        BadRequest,
        {},
    ),
    ("groq", "groq_401.json", 401, {}, AuthFailed, {}),
    ("groq", "groq_400_model_decommissioned.json", 400, {}, ModelUnavailable, {}),
    ("groq", "groq_429.json", 429, {}, RateLimited, {"retry_after": pytest.approx(50.597142857)}),
    ("groq", "groq_429.json", 429, {"retry-after": "51"}, RateLimited, {"retry_after": 51.0}),
    (
        "groq",
        body(
            message="Request too large for model `m` on tokens per minute (TPM)",
            type="tokens",
            code="rate_limit_exceeded",
        ),
        413,
        {},
        RateLimited,
        {"retryable": False},
    ),
    ("groq", body(message="Service Unavailable", type="internal_server_error"), 503, {}, UpstreamError, {}),
]


def _id(row):
    return f"{row[0]}-{row[2]}-{row[1][:40] if row[1].endswith('.json') else row[4].__name__}"


@pytest.mark.parametrize(
    ("provider", "source", "status", "headers", "error_class", "attrs"),
    ERROR_TABLE,
    ids=[_id(r) for r in ERROR_TABLE],
)
def test_error_answer_maps_to_typed_exception(
    replay, transcripts, provider, source, status, headers, error_class, attrs
):
    payload = (transcripts / source).read_bytes() if source.endswith(".json") else source
    adapter, transport = replay(provider)
    transport.add(payload, status=status, headers={"content-type": "application/json", **headers})
    with pytest.raises(error_class) as caught:
        adapter.stream_chat(
            "sk-apZBs0000000000000000000001cj4", model="m", messages=[ChatMessage("user", "hi")]
        )
    error = caught.value
    assert type(error) is error_class
    assert error.status == status
    assert error.provider == provider
    for name, value in attrs.items():
        assert getattr(error, name) == value, name


def test_openai_401_message_does_not_repeat_the_masked_key(replay, transcripts):
    adapter, transport = replay("openai")
    transport.add((transcripts / "openai_401.json").read_bytes(), status=401)
    with pytest.raises(AuthFailed) as caught:
        adapter.list_models("sk-apZBs-whatever")
    assert "sk-apZBs" not in str(caught.value)
    assert "1cj4" not in repr(caught.value)
    assert "Incorrect API key provided" in caught.value.message


@pytest.mark.parametrize(
    ("provider", "source", "status", "check"),
    [
        ("openai", "openai_401.json", 401, KeyCheck.INVALID),
        ("anthropic", "anthropic_401.json", 401, KeyCheck.INVALID),
        ("gemini", "gemini_400_invalid_key.json", 400, KeyCheck.INVALID),
        ("groq", "groq_401.json", 401, KeyCheck.INVALID),
        ("groq", "groq_429.json", 429, KeyCheck.UNAVAILABLE),
        ("anthropic", "anthropic_429.json", 429, KeyCheck.UNAVAILABLE),
        ("openai", '{"error":{"message":"boom","type":"server_error"}}', 500, KeyCheck.UNAVAILABLE),
        ("gemini", "not json at all", 502, KeyCheck.UNAVAILABLE),
    ],
)
def test_validate_key_is_invalid_only_when_the_key_is_rejected(
    replay, transcripts, provider, source, status, check
):
    payload = (transcripts / source).read_bytes() if source.endswith(".json") else source
    adapter, transport = replay(provider)
    transport.add(payload, status=status)
    assert adapter.validate_key("some-key") is check


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers_parse_to_seconds(headers, seconds):
    assert parse_retry_after(headers) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("47s", 47.0),
        ("34.4s", 34.4),
        ("9m38.016s", 578.016),
        ("120ms", 0.12),
        ("1h", 3600.0),
        ("", None),
        ("later", None),
    ],
)
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds) if seconds else parse_duration(text) is None


def test_redact_masks_the_exact_key_and_key_shapes():
    assert "s3cr3t-value" not in redact("key s3cr3t-value leaked", "s3cr3t-value")
    assert "gsk_abcdef" not in redact("bad gsk_abcdefghijkl")
    assert redact("Incorrect API key provided: kk. More") == "Incorrect API key provided: [REDACTED] More"
