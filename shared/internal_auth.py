"""The signed internal credential: who is calling (service), for whom (user), to which service."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from shared.errors import APIError, Forbidden
from shared.tokens import SignedTokenCodec, TokenExpired, TokenInvalid

HEADER = "X-KeyLM-Internal"
# Short-lived: each call gets a fresh one; a captured credential is useless a minute later.
TTL_SECONDS = 60


class InternalAuthFailed(APIError):
    status, code, message = 401, "unauthenticated", "A valid internal credential is required."


@dataclass(frozen=True)
class Caller:
    """The verified identity of a request: the calling service and the end user, if any."""

    service: str
    user_id: str | None = None
    session_id: str | None = None

    def require_user(self) -> str:
        if not self.user_id:
            raise InternalAuthFailed("This call needs a user.")
        return self.user_id

    def require_service(self, *allowed: str) -> None:
        if self.service not in allowed:
            raise Forbidden()


class InternalCredentials:
    """Issues and checks credentials signed with INTERNAL_AUTH_SECRET."""

    def __init__(self, secret: str | None, clock=None):
        kwargs = {"clock": clock} if clock else {}
        # No secret only in an app built to migrate (it serves nothing): a random one refuses
        # every credential and issues none another service accepts.
        secret = secret or secrets.token_hex(32)
        self._codec = SignedTokenCodec(secret, salt="keylm.internal.v1", **kwargs)

    def issue(
        self, caller: str, audience: str, user_id: str | None = None, session_id: str | None = None
    ) -> str:
        payload = {"iss": caller, "aud": audience, "sub": user_id, "sid": session_id}
        return self._codec.encode(payload, TTL_SECONDS)

    def verify(self, token: str | None, audience: str) -> Caller:
        """Return the caller, or raise InternalAuthFailed (missing, tampered, expired, other aud)."""
        if not token:
            raise InternalAuthFailed()
        try:
            payload = self._codec.decode(token)
        except TokenExpired:
            raise InternalAuthFailed("The internal credential has expired.") from None
        except TokenInvalid:
            raise InternalAuthFailed() from None
        if payload.get("aud") != audience or not isinstance(payload.get("iss"), str):
            raise InternalAuthFailed("The internal credential is for another service.")
        return Caller(service=payload["iss"], user_id=payload.get("sub"), session_id=payload.get("sid"))
