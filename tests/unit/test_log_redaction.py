"""shared.logging: JSON log lines never carry a provider key, token, password or configured secret."""

from __future__ import annotations

import base64
import logging
import secrets

import pytest

from shared.config import secret_values
from shared.logging import MASK, RedactionFilter, Redactor
from tests.conftest import make_settings

logger = logging.getLogger("keylm.test.redaction")

OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
OPENAI_LEGACY_KEY = "sk-" + "T3BlbkFJ" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe" * 2 + "-AbCdEfAA"
GROQ_KEY = "gsk_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8L9z0X1c2V3b4N5m6"
GEMINI_KEY = "AIzaSy" + "D-9tSrke72PouQMnMX7a7eZSW0jkFMBWY"
BEARER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXBhcnQ"
SESSION_COOKIE = ".eJyrVsosLlayUkpPLEktT6xU0lFKLE0B8hNLSzKAnOLSJCCntDi1SNcQxM0EyuWV5uToKKVWFChZGVo"

# (message, the secret parts that must not appear in the output)
LEAKS = {
    "openai-key": (f"calling OpenAI with {OPENAI_KEY}", [OPENAI_KEY, OPENAI_KEY[8:]]),
    "openai-legacy-key": (f"key={OPENAI_LEGACY_KEY} rejected", [OPENAI_LEGACY_KEY[3:]]),
    "anthropic-key": (f"Anthropic said: invalid x-api-key {ANTHROPIC_KEY}", [ANTHROPIC_KEY[7:]]),
    "groq-key": (f"groq key {GROQ_KEY} is over quota", [GROQ_KEY[4:]]),
    "gemini-key": (f"GET /v1beta/models?key={GEMINI_KEY}", [GEMINI_KEY[4:]]),
    "gemini-key-in-text": (f"gemini key {GEMINI_KEY} invalid", [GEMINI_KEY[4:]]),
    "bearer-header": (f"Authorization: Bearer {BEARER_TOKEN}", [BEARER_TOKEN, BEARER_TOKEN[:20]]),
    "bearer-lowercase": (f"sent bearer {BEARER_TOKEN}", [BEARER_TOKEN[:20]]),
    "session-cookie-header": (f"Cookie: keylm_session={SESSION_COOKIE}", [SESSION_COOKIE[:20]]),
    "session-cookie-among-others": (
        f"cookies: theme=dark; keylm_session={SESSION_COOKIE}; lang=de",
        [SESSION_COOKIE[:20]],
    ),
    "set-cookie": (f"Set-Cookie: keylm_session={SESSION_COOKIE}; HttpOnly", [SESSION_COOKIE[:20]]),
    "json-password": ('body {"email": "a@example.com", "password": "hunter2hunter2"}', ["hunter2"]),
    "json-password-with-spaces": (
        'body {"email": "a@example.com", "password": "correct horse battery staple"}',
        ["correct", "horse", "battery", "staple"],
    ),
    "json-password-with-escaped-quote": (
        r'body {"password": "pa\"ss word-tail", "email": "a@example.com"}',
        ["pa\\", "ss word", "word-tail"],
    ),
    "json-new-password": ('{"newPassword": "s3cret-new-pass"}', ["s3cret-new-pass"]),
    "json-api-key": ('{"apiKey": "custom-provider-key-123", "label": "work"}', ["custom-provider-key-123"]),
    "json-api-key-with-spaces": ('{"apiKey": "key with spaces 123"}', ["key with", "spaces 123"]),
    "json-token": (
        '{"token": "reset-token-abc-123", "password": "another-pass"}',
        ["reset-token", "another"],
    ),
    "python-dict-repr": ("payload {'password': 'single quoted pw', 'email': 'x'}", ["single", "quoted pw"]),
    "query-string-token": (
        "GET /reset?token=Zr5TmFq2-Yb8_Xc1Wd4 from 10.0.0.1",
        ["Zr5TmFq2-Yb8_Xc1Wd4"],
    ),
    "query-string-password": ("POST /login?email=a%40b.c&password=p%40ss+word&next=/", ["p%40ss", "word&"]),
    "query-string-api-key": ("GET /models?api_key=abcdefgh12345&x=1", ["abcdefgh12345"]),
    "x-goog-api-key-header": ("x-goog-api-key: raw-header-value-9876", ["raw-header-value-9876"]),
    "internal-credential-header": ("X-KeyLM-Internal: .eJwFwTEOgzAMAdC_eGb", [".eJwFwTEOgzAMAdC_eGb"]),
}


@pytest.mark.parametrize(("message", "leaked"), list(LEAKS.values()), ids=list(LEAKS))
def test_secret_shapes_are_masked_in_json_log_output(json_log, message, leaked):
    log = json_log()

    logger.warning(message)

    [record] = log.records
    assert MASK in record["message"]
    for part in leaked:
        assert part not in log.text


@pytest.mark.parametrize(("message", "leaked"), list(LEAKS.values()), ids=list(LEAKS))
def test_secret_shapes_are_masked_when_passed_as_format_arguments(json_log, message, leaked):
    log = json_log()

    logger.info("upstream said: %s (attempt %d)", message, 2)

    [record] = log.records
    assert record["message"].startswith("upstream said: ")
    assert record["message"].endswith(" (attempt 2)")
    for part in leaked:
        assert part not in log.text


@pytest.mark.parametrize(("message", "leaked"), list(LEAKS.values()), ids=list(LEAKS))
def test_secret_shapes_are_masked_in_extra_fields(json_log, message, leaked):
    log = json_log()

    logger.info("provider error", extra={"upstream_body": message})

    [record] = log.records
    assert MASK in record["upstream_body"]
    for part in leaked:
        assert part not in log.text


@pytest.fixture
def configured_secrets(tmp_path) -> dict[str, str]:
    """A service's real secrets as set in its environment."""
    previous = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = make_settings(tmp_path / "var", APP_ENCRYPTION_KEY_PREVIOUS=previous)
    return {
        "APP_AUTH_SECRET": settings.auth_secret,
        **{f"{name.upper()}_SIGNING_KEY": key for name, key in settings.signing_keys.items()},
        "PASSWORD_PEPPER": settings.password_pepper,
        "GROQ_API_KEY": settings.groq_api_key,  # `gsk_test_...`: not the shape of a real Groq key
        "APP_ENCRYPTION_KEY": base64.b64encode(settings.encryption_key).decode(),
        "APP_ENCRYPTION_KEY_PREVIOUS": previous,
        "_secret_values": secret_values(settings),
    }


@pytest.mark.parametrize(
    "name",
    [
        "APP_AUTH_SECRET",
        "GATEWAY_SIGNING_KEY",
        "AUTH_SIGNING_KEY",
        "KEYS_SIGNING_KEY",
        "CHAT_SIGNING_KEY",
        "QUOTA_SIGNING_KEY",
        "PASSWORD_PEPPER",
        "GROQ_API_KEY",
        "APP_ENCRYPTION_KEY",
        "APP_ENCRYPTION_KEY_PREVIOUS",
    ],
)
def test_exact_configured_secret_is_masked(json_log, configured_secrets, name):
    secret = configured_secrets[name]
    log = json_log(secrets=configured_secrets["_secret_values"])

    logger.error("config dump: %s=%s; done", name, secret)
    logger.error("embedded%sinside", secret)

    first, second = log.records
    assert first["message"] == f"config dump: {name}={MASK}; done"
    assert second["message"] == f"embedded{MASK}inside"
    assert secret not in log.text


def test_traceback_holding_a_secret_is_masked(json_log, configured_secrets):
    secret = configured_secrets["CHAT_SIGNING_KEY"]
    log = json_log(secrets=configured_secrets["_secret_values"])

    try:
        raise ConnectionError(f"could not sign with {secret} for key {OPENAI_KEY}")
    except ConnectionError:
        logger.exception("call failed")

    [record] = log.records
    assert record["message"] == "call failed"
    assert "Traceback (most recent call last)" in record["exc_info"]
    assert f"ConnectionError: could not sign with {MASK} for key {MASK}" in record["exc_info"]
    assert secret not in log.text
    assert OPENAI_KEY[8:] not in log.text


def test_chained_traceback_holding_a_password_is_masked(json_log):
    log = json_log()

    try:
        try:
            raise ValueError('bad body {"password": "zebra quartz 1234"}')
        except ValueError as inner:
            raise RuntimeError("login failed") from inner
    except RuntimeError:
        logger.exception("unhandled error")

    [record] = log.records
    assert "RuntimeError: login failed" in record["exc_info"]
    assert "ValueError" in record["exc_info"]
    for part in ("zebra", "quartz"):
        assert part not in log.text


@pytest.mark.parametrize(
    "message",
    [
        "user registered",
        "GET /api/threads/5f1c9a6e-2b7d-4c1e-9f0a-3b2c1d0e9f8a/messages 200",
        '{"usage": {"promptTokens": 12, "outputTokens": 30, "totalTokens": 42}}',
        "max_tokens=1024 temperature=0.7",
        "model moonshotai/kimi-k2-instruct-0905 answered",
        "task-runner finished; skipped 3",
    ],
)
def test_ordinary_text_is_left_alone(json_log, message):
    log = json_log()

    logger.info(message)

    assert log.records[0]["message"] == message


def test_log_line_is_json_with_level_logger_service_and_message(json_log):
    log = json_log(service="auth")

    logger.warning("hello %s", "world", extra={"user_id": "u-1"})

    [record] = log.records
    assert record["level"] == "WARNING"
    assert record["logger"] == "keylm.test.redaction"
    assert record["service"] == "auth"
    assert record["message"] == "hello world"
    assert record["user_id"] == "u-1"


def test_redactor_ignores_configured_secrets_too_short_to_mask_safely():
    redactor = Redactor(["abc", "", None])  # a 3-character "secret" would mask ordinary words

    assert redactor("abcdef") == "abcdef"


def test_redaction_filter_masks_a_record_before_any_handler_formats_it():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (OPENAI_KEY,), None)
    record.detail = f"Bearer {BEARER_TOKEN}"

    assert RedactionFilter(Redactor()).filter(record) is True

    assert record.getMessage() == f"key {MASK}"
    assert record.detail == f"Bearer {MASK}"


def test_emails_are_masked_in_rate_limit_log_lines(json_log):
    log = json_log()

    logging.getLogger("flask-limiter").info(
        "ratelimit 5 per 1 minute (LIMITER/keylm/email:Alice.Smith+x@mail.example.com/login) exceeded"
    )

    assert "Alice.Smith" not in log.text and "mail.example.com" not in log.text
    assert MASK in log.text
