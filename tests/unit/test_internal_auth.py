"""shared.internal_auth: the signed service-to-service credential (X-KeyLM-Internal)."""

from __future__ import annotations

import secrets

import pytest

from shared.errors import Forbidden
from shared.internal_auth import TTL_SECONDS, Caller, InternalAuthFailed, InternalCredentials
from tests.unit.conftest import flip_high_bit


@pytest.fixture
def credentials(secret, clock) -> InternalCredentials:
    return InternalCredentials(secret, clock=clock)


def refusal(credentials: InternalCredentials, token, audience: str = "auth") -> InternalAuthFailed:
    with pytest.raises(InternalAuthFailed) as caught:
        credentials.verify(token, audience=audience)
    return caught.value


def test_valid_credential_round_trips_caller_user_and_session(credentials):
    token = credentials.issue("gateway", "auth", user_id="user-1", session_id="session-1")

    caller = credentials.verify(token, audience="auth")

    assert caller == Caller(service="gateway", user_id="user-1", session_id="session-1")


def test_credential_without_user_verifies_to_a_service_only_caller(credentials):
    caller = credentials.verify(credentials.issue("chat", "quota"), audience="quota")

    assert caller == Caller(service="chat", user_id=None, session_id=None)


def test_credential_is_verified_by_another_instance_with_the_same_secret(secret, clock):
    token = InternalCredentials(secret, clock=clock).issue("gateway", "keys", user_id="u")

    assert InternalCredentials(secret, clock=clock).verify(token, audience="keys").user_id == "u"


def test_credential_lives_sixty_seconds(credentials, clock):
    token = credentials.issue("gateway", "auth", user_id="u")

    clock.now += TTL_SECONDS - 1
    assert credentials.verify(token, audience="auth").user_id == "u"
    assert TTL_SECONDS == 60


def test_expired_credential_is_refused(credentials, clock):
    token = credentials.issue("gateway", "auth", user_id="u")

    clock.now += TTL_SECONDS + 1

    error = refusal(credentials, token)
    assert error.status == 401
    assert error.code == "unauthenticated"
    assert "expired" in error.message


@pytest.mark.parametrize("index", [0, 10, -10, -1])
def test_tampered_credential_is_refused(credentials, index):
    token = credentials.issue("gateway", "auth", user_id="user-1")
    position = index % len(token)
    if token[position] == ".":
        position -= 1
    forged = token[:position] + flip_high_bit(token[position]) + token[position + 1 :]

    error = refusal(credentials, forged)
    assert (error.status, error.code) == (401, "unauthenticated")


def test_credential_with_another_users_payload_but_original_signature_is_refused(credentials):
    mine = credentials.issue("gateway", "auth", user_id="me")
    theirs = credentials.issue("gateway", "auth", user_id="victim")
    forged = theirs.rsplit(".", 1)[0] + "." + mine.rsplit(".", 1)[1]

    refusal(credentials, forged)


@pytest.mark.parametrize(
    ("issued_for", "presented_to"), [("keys", "auth"), ("auth", "chat"), ("quota", "keys")]
)
def test_credential_for_another_audience_is_refused(credentials, issued_for, presented_to):
    token = credentials.issue("gateway", issued_for, user_id="u")

    error = refusal(credentials, token, audience=presented_to)
    assert error.status == 401
    assert "another service" in error.message


def test_credential_signed_with_another_secret_is_refused(credentials, clock):
    forger = InternalCredentials(secrets.token_hex(32), clock=clock)

    refusal(credentials, forger.issue("gateway", "auth", user_id="u"))


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_credential_is_refused(credentials, missing):
    error = refusal(credentials, missing)

    assert (error.status, error.code) == (401, "unauthenticated")


@pytest.mark.parametrize("garbage", ["garbage", "a.b", "Bearer xyz", "x" * 4096])
def test_garbage_credential_is_refused(credentials, garbage):
    refusal(credentials, garbage)


def test_require_service_refuses_another_service_with_403():
    with pytest.raises(Forbidden) as caught:
        Caller(service="chat", user_id="u").require_service("gateway")

    assert caught.value.status == 403


def test_require_service_accepts_an_allowed_service():
    Caller(service="chat").require_service("gateway", "chat")


def test_require_user_refuses_a_call_without_user():
    with pytest.raises(InternalAuthFailed):
        Caller(service="gateway").require_user()


def test_require_user_returns_the_user():
    assert Caller(service="gateway", user_id="u").require_user() == "u"
