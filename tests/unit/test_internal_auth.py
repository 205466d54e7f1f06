"""shared.internal_auth: the Ed25519-signed service-to-service credential (X-KeyLM-Internal)."""

from __future__ import annotations

import hashlib

import pytest

from shared.errors import Forbidden
from shared.internal_auth import (
    TTL_SECONDS,
    Caller,
    InternalAuthFailed,
    InternalCredentials,
    ReplayGuard,
    canonical_target,
)
from shared.signing import new_private_key, parse_private_key, sign_token
from tests.unit.conftest import flip_high_bit

SERVICES = ("gateway", "auth", "keys", "chat", "quota")
TARGET = "/internal/sessions/s-1"


@pytest.fixture
def private_keys():
    return {name: parse_private_key(new_private_key()) for name in SERVICES}


@pytest.fixture
def issuer(private_keys, clock):
    """`issuer("gateway")`: that service's credentials, signed with its own key."""
    return lambda name: InternalCredentials(name, private_keys[name], clock=clock)


@pytest.fixture
def receiver(private_keys, clock):
    """`receiver("auth", "gateway", "chat")`: a service accepting the named callers by public key."""

    def build(name: str, *accepts: str) -> InternalCredentials:
        trusted = {caller: [private_keys[caller].public_key()] for caller in accepts}
        return InternalCredentials(name, trusted=trusted, replay_guard=ReplayGuard(clock=clock), clock=clock)

    return build


def verify(credentials: InternalCredentials, token, method="GET", target=TARGET, body=b"") -> Caller:
    return credentials.verify(token, method=method, target=target, body=body)


def refusal(credentials: InternalCredentials, token, **request) -> InternalAuthFailed:
    with pytest.raises(InternalAuthFailed) as caught:
        verify(credentials, token, **request)
    return caught.value


def test_valid_credential_round_trips_caller_user_and_session(issuer, receiver):
    token = issuer("gateway").issue("auth", "GET", TARGET, user_id="user-1", session_id="session-1")

    caller = verify(receiver("auth", "gateway"), token)

    assert caller == Caller(service="gateway", user_id="user-1", session_id="session-1")


def test_credential_without_user_verifies_to_a_service_only_caller(issuer, receiver):
    token = issuer("chat").issue("quota", "POST", "/internal/x", b"{}")

    caller = verify(
        receiver("quota", "gateway", "chat"), token, method="POST", target="/internal/x", body=b"{}"
    )

    assert caller == Caller(service="chat", user_id=None, session_id=None)


def test_credential_lives_thirty_seconds_at_most(issuer, receiver, clock):
    token = issuer("gateway").issue("auth", "GET", TARGET, user_id="u")

    clock.now += TTL_SECONDS - 1
    assert verify(receiver("auth", "gateway"), token).user_id == "u"
    assert TTL_SECONDS == 30


def test_expired_credential_is_refused(issuer, receiver, clock):
    token = issuer("gateway").issue("auth", "GET", TARGET, user_id="u")

    clock.now += TTL_SECONDS + 1

    error = refusal(receiver("auth", "gateway"), token)
    assert error.status == 401
    assert error.code == "unauthenticated"
    assert "expired" in error.message


def test_credential_signed_for_a_longer_life_is_refused(private_keys, receiver, clock):
    payload = {
        "iss": "gateway", "aud": "auth", "sub": "u", "sid": None, "mth": "GET", "tgt": TARGET,
        "bdy": hashlib.sha256(b"").hexdigest(), "iat": int(clock()),
        "exp": int(clock()) + 3600, "jti": "long-lived",
    }  # fmt: skip
    token = sign_token(private_keys["gateway"], "keylm.internal.v2", payload)

    refusal(receiver("auth", "gateway"), token)


@pytest.mark.parametrize("index", [0, 10, -10, -1])
def test_tampered_credential_is_refused(issuer, receiver, index):
    token = issuer("gateway").issue("auth", "GET", TARGET, user_id="user-1")
    position = index % len(token)
    if token[position] == ".":
        position -= 1
    forged = token[:position] + flip_high_bit(token[position]) + token[position + 1 :]

    error = refusal(receiver("auth", "gateway"), forged)
    assert (error.status, error.code) == (401, "unauthenticated")


def test_credential_with_another_users_payload_but_original_signature_is_refused(issuer, receiver):
    gateway = issuer("gateway")
    mine = gateway.issue("auth", "GET", TARGET, user_id="me")
    theirs = gateway.issue("auth", "GET", TARGET, user_id="victim")
    forged = theirs.rsplit(".", 1)[0] + "." + mine.rsplit(".", 1)[1]

    refusal(receiver("auth", "gateway"), forged)


@pytest.mark.parametrize(
    ("issued_for", "presented_to"), [("keys", "auth"), ("auth", "chat"), ("quota", "keys")]
)
def test_credential_for_another_audience_is_refused(issuer, receiver, issued_for, presented_to):
    token = issuer("gateway").issue(issued_for, "GET", TARGET, user_id="u")

    error = refusal(receiver(presented_to, "gateway"), token)
    assert error.status == 401
    assert "another service" in error.message


def test_credential_signed_with_another_key_is_refused(receiver, clock):
    forger = InternalCredentials("gateway", parse_private_key(new_private_key()), clock=clock)

    refusal(receiver("auth", "gateway"), forger.issue("auth", "GET", TARGET, user_id="u"))


def test_gateway_key_cannot_speak_as_chat(private_keys, receiver, clock):
    """A breached gateway signs with its own key; claiming to be chat does not make it chat."""
    impostor = InternalCredentials("chat", private_keys["gateway"], clock=clock)
    token = impostor.issue("keys", "POST", "/internal/keys/resolve", b"{}", user_id="victim")

    refusal(
        receiver("keys", "gateway", "chat"), token, method="POST", target="/internal/keys/resolve", body=b"{}"
    )


def test_caller_the_receiver_does_not_name_is_refused(issuer, receiver):
    token = issuer("quota").issue("keys", "GET", TARGET)

    refusal(receiver("keys", "gateway", "chat"), token)


def test_replayed_credential_is_refused(issuer, receiver):
    auth = receiver("auth", "gateway")
    token = issuer("gateway").issue("auth", "GET", TARGET, user_id="u")

    verify(auth, token)
    error = refusal(auth, token)
    assert "used before" in error.message


@pytest.mark.parametrize(
    "presented",
    [
        {"method": "DELETE"},
        {"target": "/internal/sessions/s-2"},
        {"target": TARGET + "?all=1"},
        {"body": b'{"userId": "victim"}'},
    ],
    ids=["method", "path", "query", "body"],
)
def test_credential_for_another_request_is_refused(issuer, receiver, presented):
    token = issuer("gateway").issue("auth", "GET", TARGET, b"", user_id="u")

    error = refusal(receiver("auth", "gateway"), token, **presented)
    assert "another request" in error.message


def test_target_is_compared_in_one_spelling_for_sender_and_receiver():
    sent = "/api/threads/a%2523b%3F/messages?cursor=x%20y"
    # werkzeug hands the receiver the path decoded once, and the query as sent.
    assert canonical_target(sent) == canonical_target(
        "/api/threads/a%23b?/messages", "cursor=x%20y", decoded=True
    )


@pytest.mark.parametrize("missing", [None, ""])
def test_missing_credential_is_refused(receiver, missing):
    error = refusal(receiver("auth", "gateway"), missing)

    assert (error.status, error.code) == (401, "unauthenticated")


@pytest.mark.parametrize("garbage", ["garbage", "a.b", "Bearer xyz", "x" * 4096, "e30.AAAA"])
def test_garbage_credential_is_refused(receiver, garbage):
    refusal(receiver("auth", "gateway"), garbage)


def test_session_token_is_not_an_internal_credential(private_keys, receiver, clock):
    session = sign_token(
        private_keys["gateway"], "keylm.session.v2", {"iss": "gateway", "exp": int(clock()) + 60}
    )

    refusal(receiver("auth", "gateway"), session)


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


def test_memory_replay_guard_forgets_an_id_only_after_it_expired(clock):
    guard = ReplayGuard(clock=clock)
    expires = int(clock()) + TTL_SECONDS

    assert guard.first_use("auth", "id-1", expires) is True
    clock.now += TTL_SECONDS
    assert guard.first_use("auth", "id-1", expires) is False
    clock.now += 60
    assert guard.first_use("auth", "id-2", int(clock()) + TTL_SECONDS) is True
    assert len(guard._seen) == 1  # id-1 is gone (it could not verify any more anyway)


def test_redis_replay_guard_refuses_an_id_seen_by_another_process(redis_url, clock):
    import secrets

    import redis

    token_id = secrets.token_hex(8)
    first = ReplayGuard(redis.Redis.from_url(redis_url), clock=clock)
    second = ReplayGuard(redis.Redis.from_url(redis_url), clock=clock)
    expires = int(clock()) + TTL_SECONDS

    assert first.first_use("keys", token_id, expires) is True
    assert second.first_use("keys", token_id, expires) is False
