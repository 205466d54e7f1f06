"""The internal credential: who is calling (service), for whom (user), which request exactly.

Each service signs its outgoing calls with its own Ed25519 key; a receiver accepts only the callers
it names, by public key. The credential binds the method, the path and query, and a hash of the
body; it lives TTL_SECONDS at most and carries a one-time id the receiver refuses to see twice.
So a service that is broken into can act only as itself, and a captured credential is useless.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import APIError, Forbidden
from shared.signing import TokenExpired, TokenInvalid, read_token, sign_token

logger = logging.getLogger(__name__)

HEADER = "X-KeyLM-Internal"
KIND = "keylm.internal.v2"
# Short-lived: each call gets a fresh one. Clocks of the services may differ by this much.
TTL_SECONDS = 30
CLOCK_SKEW_SECONDS = 5
# Characters a path segment may hold unescaped (RFC 3986 pchar, and the `/` between segments).
PATH_SAFE = "/:@!$&'()*+,;="


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


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_target(path: str, query: str = "", *, decoded: bool = False) -> str:
    """One spelling of a request target for sender and receiver: the path escaped the same way,
    then the query as sent. The sender has the path as sent (`decoded=False`); a receiver has it
    as werkzeug decoded it once (`decoded=True`)."""
    if not decoded and "?" in path and not query:
        path, query = path.split("?", 1)
    target = quote(path if decoded else unquote(path), safe=PATH_SAFE)
    return f"{target}?{query}" if query else target


class ReplayGuard:
    """Remembers each credential id until its expiry: in Redis when configured (shared by every
    process of the receiver), in this process's memory otherwise or while Redis is unreachable."""

    def __init__(self, client: redis.Redis | None = None, clock: Callable[[], float] = time.time):
        self._redis = client
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._next_prune = 0.0
        self._lock = threading.Lock()

    def first_use(self, audience: str, token_id: str, expires_at: int) -> bool:
        key = f"keylm:internal-jti:{audience}:{token_id}"
        if self._redis is not None:
            try:
                ttl = max(1, int(expires_at - self._clock()) + CLOCK_SKEW_SECONDS)
                return bool(self._redis.set(key, b"1", nx=True, ex=ttl))
            except redis.RedisError as exc:
                logger.warning("replay guard: redis failed (%s), remembering in memory", type(exc).__name__)
        now = self._clock()
        with self._lock:
            if now >= self._next_prune:  # forget expired ids, at most once a second
                self._seen = {k: t for k, t in self._seen.items() if t >= now}
                self._next_prune = now + 1
            if key in self._seen:
                return False
            self._seen[key] = expires_at + CLOCK_SKEW_SECONDS
            return True


class InternalCredentials:
    """Issues this service's credentials (with its private key) and checks incoming ones against
    the public keys of the callers it accepts."""

    def __init__(
        self,
        service: str,
        private_key: Ed25519PrivateKey | None = None,
        trusted: Mapping[str, Iterable[Ed25519PublicKey]] | None = None,
        replay_guard: ReplayGuard | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.service = service
        self._private_key = private_key
        self._trusted = {name: tuple(keys) for name, keys in (trusted or {}).items()}
        self._replay = replay_guard or ReplayGuard(clock=clock)
        self._clock = clock

    def issue(
        self,
        audience: str,
        method: str,
        target: str,
        body: bytes = b"",
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        if self._private_key is None:
            raise RuntimeError(f"{self.service} has no signing key")
        now = int(self._clock())
        payload = {
            "iss": self.service,
            "aud": audience,
            "sub": user_id,
            "sid": session_id,
            "mth": method.upper(),
            "tgt": canonical_target(target),
            "bdy": body_digest(body),
            "iat": now,
            "exp": now + TTL_SECONDS,
            "jti": secrets.token_urlsafe(16),
        }
        return sign_token(self._private_key, KIND, payload)

    def verify(self, token: str | None, *, method: str, target: str, body: bytes) -> Caller:
        """`target` is canonical_target() of the request as received. Return the caller, or raise
        InternalAuthFailed: missing, tampered, signed by a caller this service does not accept,
        expired, for another service or request, or seen before."""
        if not token:
            raise InternalAuthFailed()
        issuer = _claimed_issuer(token)
        keys = self._trusted.get(issuer or "", ())
        if not keys:
            raise InternalAuthFailed()
        try:
            payload = read_token(token, KIND, keys)
        except (TokenInvalid, TokenExpired):
            raise InternalAuthFailed() from None
        now = self._clock()
        issued = payload.get("iat")
        if (
            not isinstance(issued, int)
            or payload["exp"] - issued > TTL_SECONDS
            or issued > now + CLOCK_SKEW_SECONDS
        ):
            raise InternalAuthFailed()
        if payload["exp"] < now:
            raise InternalAuthFailed("The internal credential has expired.")
        if payload.get("iss") != issuer or payload.get("aud") != self.service:
            raise InternalAuthFailed("The internal credential is for another service.")
        if (
            payload.get("mth") != method.upper()
            or payload.get("tgt") != target
            or payload.get("bdy") != body_digest(body)
        ):
            raise InternalAuthFailed("The internal credential is for another request.")
        token_id = payload.get("jti")
        if not isinstance(token_id, str) or not token_id:
            raise InternalAuthFailed()
        if not self._replay.first_use(self.service, token_id, payload["exp"]):
            raise InternalAuthFailed("The internal credential was used before.")
        return Caller(service=issuer, user_id=payload.get("sub"), session_id=payload.get("sid"))


def _claimed_issuer(token: str) -> str | None:
    """The `iss` a token claims, read before its signature is checked (to pick the key to check it with)."""
    try:
        body = token.split(".")[0]
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, IndexError):
        return None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    return issuer if isinstance(issuer, str) else None
