"""Signed tokens with an expiry. Session cookies are Ed25519-signed by auth_service (shared/signing.py);
the HMAC codec stays for tokens one service both signs and checks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeSerializer

from shared.signing import SessionTokens, TokenExpired, TokenInvalid

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["SessionTokens", "SignedTokenCodec", "TokenExpired", "TokenInvalid", "session_codec"]


class SignedTokenCodec:
    """Signs a small JSON payload with an `exp` claim; `salt` keeps token kinds apart."""

    def __init__(self, secret: str, salt: str, clock: Callable[[], float] = time.time):
        self._serializer = URLSafeSerializer(
            secret, salt=salt, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._clock = clock

    def encode(self, payload: dict[str, Any], ttl_seconds: float) -> str:
        return self._serializer.dumps({**payload, "exp": int(self._clock() + ttl_seconds)})

    def decode(self, token: str) -> dict[str, Any]:
        try:
            payload = self._serializer.loads(token)
        except (BadSignature, ValueError, TypeError) as exc:
            raise TokenInvalid("bad token") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
            raise TokenInvalid("bad token payload")
        if payload["exp"] < self._clock():
            raise TokenExpired("token expired")
        return payload


def session_codec(settings: Settings, *, signing: bool = False) -> SessionTokens:
    """Session cookies: signed by auth_service alone (`signing=True` needs AUTH_SIGNING_KEY), verified
    by the gateway with auth's public keys (AUTH_PUBLIC_KEYS, more than one while rotating)."""
    private_key = settings.private_key("auth") if signing else None
    return SessionTokens(private_key, settings.trusted_keys(["auth"])["auth"])


# auth_service hands a new session to the gateway in this response header (and asks it to drop
# the cookie with the other); the gateway turns them into Set-Cookie and never passes them on.
SET_SESSION_HEADER = "X-KeyLM-Set-Session"
CLEAR_SESSION_HEADER = "X-KeyLM-Clear-Session"
