"""HMAC-SHA256 signed tokens with an expiry: session cookies and internal service credentials."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer


class TokenInvalid(Exception):
    """The token is malformed, tampered with, signed with another secret, or expired."""


class TokenExpired(TokenInvalid):
    """The signature is good but the token's expiry has passed."""


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


def session_codec(auth_secret: str) -> SignedTokenCodec:
    """Session cookies: signed by auth_service, verified by the gateway."""
    return SignedTokenCodec(auth_secret, salt="keylm.session.v1")


# auth_service hands a new session to the gateway in this response header (and asks it to drop
# the cookie with the other); the gateway turns them into Set-Cookie and never passes them on.
SET_SESSION_HEADER = "X-KeyLM-Set-Session"
CLEAR_SESSION_HEADER = "X-KeyLM-Clear-Session"
