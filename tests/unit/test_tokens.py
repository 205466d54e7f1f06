"""shared.tokens: signed tokens with an expiry. Sessions are Ed25519-signed by auth alone; HMAC
salts keep the remaining kinds apart, and a session never passes as an internal credential."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from itsdangerous import URLSafeSerializer

from shared.internal_auth import InternalAuthFailed, InternalCredentials
from shared.tokens import SessionTokens, SignedTokenCodec, TokenExpired, TokenInvalid, session_codec
from tests.unit.conftest import flip_high_bit

SESSION_SALT = "keylm.session.v1"
INTERNAL_SALT = "keylm.internal.v1"


@pytest.fixture
def codec(secret, clock) -> SignedTokenCodec:
    return SignedTokenCodec(secret, salt=SESSION_SALT, clock=clock)


def test_session_token_round_trips_its_payload(settings):
    codec = session_codec(settings, signing=True)

    token = codec.encode({"uid": "user-1", "sid": "session-1"}, ttl_seconds=3600)
    payload = codec.decode(token)

    assert payload["uid"] == "user-1"
    assert payload["sid"] == "session-1"
    assert isinstance(payload["exp"], int)


def test_token_carries_an_expiry_ttl_seconds_ahead(codec, clock):
    payload = codec.decode(codec.encode({"uid": "u"}, ttl_seconds=600))

    assert payload["exp"] == int(clock.now + 600)


def test_token_is_valid_until_its_expiry(codec, clock):
    token = codec.encode({"uid": "u"}, ttl_seconds=60)

    clock.now += 59
    assert codec.decode(token)["uid"] == "u"


def test_expired_token_raises_token_expired(codec, clock):
    token = codec.encode({"uid": "u"}, ttl_seconds=60)

    clock.now += 61

    with pytest.raises(TokenExpired):
        codec.decode(token)


def test_token_expired_is_a_token_invalid():
    assert issubclass(TokenExpired, TokenInvalid)


def flip_char(text: str, index: int) -> str:
    return text[:index] + flip_high_bit(text[index]) + text[index + 1 :]


@pytest.mark.parametrize("where", ["payload-start", "payload-end", "signature-start", "signature-end"])
def test_tampered_token_is_invalid(codec, where):
    token = codec.encode({"uid": "user-1", "sid": "s"}, ttl_seconds=60)
    payload, signature = token.rsplit(".", 1)
    index = {
        "payload-start": 0,
        "payload-end": len(payload) - 1,
        "signature-start": len(payload) + 1,
        "signature-end": len(token) - 1,
    }[where]

    with pytest.raises(TokenInvalid):
        codec.decode(flip_char(token, index))


def test_payload_swapped_under_a_valid_signature_is_invalid(codec):
    mine = codec.encode({"uid": "me"}, ttl_seconds=60)
    theirs = codec.encode({"uid": "admin"}, ttl_seconds=60)
    forged = theirs.rsplit(".", 1)[0] + "." + mine.rsplit(".", 1)[1]

    with pytest.raises(TokenInvalid):
        codec.decode(forged)


@pytest.mark.parametrize(
    "garbage", ["", ".", "abc", "abc.def", "e30.", "🙂.🙂", "a" * 5000, "eyJ1aWQiOiJ4In0.c2ln"]
)
def test_garbage_is_invalid_not_an_exception(codec, garbage):
    with pytest.raises(TokenInvalid):
        codec.decode(garbage)


def test_token_signed_with_another_secret_is_invalid(codec, clock):
    other = SignedTokenCodec(secrets.token_hex(32), salt=SESSION_SALT, clock=clock)

    with pytest.raises(TokenInvalid):
        codec.decode(other.encode({"uid": "u"}, ttl_seconds=60))


@pytest.mark.parametrize(
    "payload",
    [{"uid": "u"}, {"uid": "u", "exp": "9999999999"}, {"uid": "u", "exp": 9.9e9}, ["exp", 9999999999]],
    ids=["no-exp", "string-exp", "float-exp", "not-an-object"],
)
def test_correctly_signed_token_without_an_integer_expiry_is_invalid(secret, codec, payload):
    serializer = URLSafeSerializer(secret, salt=SESSION_SALT, signer_kwargs={"digest_method": hashlib.sha256})

    with pytest.raises(TokenInvalid):
        codec.decode(serializer.dumps(payload))


def test_session_token_is_not_accepted_as_an_internal_token_even_with_the_same_secret(secret, clock):
    session = SignedTokenCodec(secret, salt=SESSION_SALT, clock=clock)
    internal = SignedTokenCodec(secret, salt=INTERNAL_SALT, clock=clock)
    session_token = session.encode({"uid": "u", "sid": "s"}, ttl_seconds=60)
    internal_token = internal.encode({"iss": "gateway", "aud": "auth"}, ttl_seconds=60)

    with pytest.raises(TokenInvalid):
        internal.decode(session_token)
    with pytest.raises(TokenInvalid):
        session.decode(internal_token)


def test_session_cookie_is_refused_as_internal_credential_with_the_same_key(settings):
    cookie = session_codec(settings, signing=True).encode(
        {"uid": "u", "sid": "s", "iss": "auth", "aud": "keys", "mth": "GET", "tgt": "/x", "jti": "j"}, 60
    )
    keys = InternalCredentials("keys", trusted=settings.trusted_keys(["auth"]))

    with pytest.raises(InternalAuthFailed):
        keys.verify(cookie, method="GET", target="/x", body=b"")


def test_internal_credential_is_refused_as_session_cookie_with_the_same_key(settings):
    credential = InternalCredentials("auth", settings.private_key("auth")).issue(
        "gateway", "GET", "/", user_id="u", session_id="s"
    )

    with pytest.raises(TokenInvalid):
        session_codec(settings).decode(credential)


def test_session_signed_by_another_services_key_is_refused(settings):
    """Only auth signs sessions: the gateway's own key (or any other) makes no valid cookie."""
    forged = SessionTokens(settings.private_key("gateway"), []).encode({"uid": "u", "sid": "s"}, 60)

    with pytest.raises(TokenInvalid):
        session_codec(settings).decode(forged)


def test_the_verifying_side_cannot_sign_sessions(settings):
    with pytest.raises(RuntimeError):
        session_codec(settings).encode({"uid": "u", "sid": "s"}, 60)
