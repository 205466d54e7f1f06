"""chat_service's dependencies: keys_service (a key for one call), quota_service, the providers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gevent

from chat_service.errors import api_error_for
from shared.config import Settings
from shared.errors import APIError
from shared.http import ServiceClient, pooled_session
from shared.providers import (
    ModelUnavailable,
    ProviderAdapter,
    ProviderError,
    RateLimited,
    UpstreamError,
    get_adapter,
)

logger = logging.getLogger(__name__)

# The provider-error table lives in chat_service.errors; streaming.py imports it from here.
__all__ = ["ResolvedKey", "Upstream", "api_error_for", "is_free_model_unavailable", "retry_in_background"]

# Work that must happen but failed now (a refund, storing a reply's outcome) is retried in the
# background, with backoff, this long.
RETRY_WINDOW_SECONDS = 900.0
RETRY_MAX_DELAY_SECONDS = 10.0


def retry_in_background(attempt: Callable[[], bool], what: str) -> None:
    """Call `attempt` (True when done) again and again with backoff, in a greenlet, for a while.

    In memory only, so a restart drops it: used only to store a reply's outcome while the database
    itself is away (no table can hold that retry; a reply left `streaming` is failed once its lease
    runs out). Calls to other services go through the outbox table instead (outbox.py).
    """

    def keep_trying() -> None:
        delay, deadline = 0.5, time.monotonic() + RETRY_WINDOW_SECONDS
        try:
            while time.monotonic() < deadline:
                gevent.sleep(delay)
                if attempt():
                    logger.info("%s: done after a retry", what)
                    return
                delay = min(delay * 2, RETRY_MAX_DELAY_SECONDS)
        except Exception:
            logger.exception("%s: failed unexpectedly", what)
            return
        logger.error("%s: gave up", what)

    gevent.spawn(keep_trying)


@dataclass(frozen=True)
class ResolvedKey:
    """A provider key for the length of one request; the plaintext is never stored or logged."""

    id: str
    provider: str
    api_key: str = field(repr=False)


class Upstream:
    """Calls to keys_service and quota_service on behalf of one user, signed as chat."""

    def __init__(self, settings: Settings, client: ServiceClient):
        self.settings = settings
        self.client = client
        self._adapters: dict[str, ProviderAdapter] = {}

    def resolve_key(self, user_id: str, provider: str, key_id: str | None) -> ResolvedKey:
        """The user's active key (a given one, or the most recently validated); 409 key_not_active."""
        body = self.client.call(
            "keys",
            "POST",
            "/internal/keys/resolve",
            user_id=user_id,
            json={"provider": provider, "keyId": key_id},
        )
        return ResolvedKey(id=body["key"]["id"], provider=provider, api_key=body["apiKey"])

    def report_key_failure(self, user_id: str, key_id: str, reason: str, mark_invalid: bool) -> None:
        """Tell the vault a key failed in use (audited; an auth failure marks it invalid)."""
        try:
            self.client.call(
                "keys",
                "POST",
                f"/internal/keys/{key_id}/use-failed",
                user_id=user_id,
                json={"reason": reason, "markInvalid": mark_invalid},
            )
        except APIError as exc:
            logger.warning("could not report a key failure to keys_service: %s", exc.code)

    def email_verified(self, user_id: str) -> bool:
        """Has the user confirmed their email (auth_service)?"""
        return bool(
            self.client.call("auth", "GET", "/internal/email-verification", user_id=user_id)["emailVerified"]
        )

    def reserve_free_request(self, user_id: str, estimated_tokens: int) -> str:
        """Take one free request from the user's and the global bucket, and the estimated tokens from
        the user's daily token budget; 429 free_quota_exhausted when any of them is used up."""
        body = self.client.call(
            "quota",
            "POST",
            "/internal/free/reserve",
            user_id=user_id,
            json={"estimatedTokens": estimated_tokens},
        )
        return body["reservationId"]

    def try_settle_free_request(self, user_id: str, reservation_id: str, used_tokens: int) -> bool:
        """One attempt to replace a reservation's estimated tokens by what the request used; True
        when there is nothing left to do (settled, or refused: not worth retrying). The outbox
        (chat_service/outbox.py) calls it, and again later when it answers False."""
        try:
            self.client.call(
                "quota",
                "POST",
                "/internal/free/settle",
                user_id=user_id,
                json={"reservationId": reservation_id, "usedTokens": used_tokens},
            )
            return True
        except APIError as exc:
            if exc.status < 500:
                logger.error("free reservation %s not settled: %s", reservation_id, exc.code)
                return True
            logger.warning("could not settle free reservation %s yet: %s", reservation_id, exc.code)
            return False

    def try_release_free_request(self, user_id: str, reservation_id: str) -> bool:
        """One attempt to give a reservation back (the provider failed before the first token);
        True when there is nothing left to do. A release is idempotent, so a late one is still
        right, and the user does not lose a request; the outbox retries it until it gets through."""
        try:
            self.client.call(
                "quota",
                "POST",
                "/internal/free/release",
                user_id=user_id,
                json={"reservationId": reservation_id},
            )
            return True
        except APIError as exc:
            if exc.status < 500:
                logger.error("free reservation %s not released: %s", reservation_id, exc.code)
                return True
            logger.warning("could not release free reservation %s yet: %s", reservation_id, exc.code)
            return False

    def adapter(self, provider: str) -> ProviderAdapter:
        """One adapter per provider for the process: its pooled connections are reused, so a
        message does not pay a new TCP (and TLS) handshake before its first token."""
        if provider not in self._adapters:
            self._adapters[provider] = get_adapter(
                provider,
                self.settings.provider_base_urls[provider],
                connect_timeout=self.settings.provider_connect_timeout,
                read_timeout=self.settings.provider_read_timeout,
                session=pooled_session(),
            )
        return self._adapters[provider]


def is_free_model_unavailable(error: ProviderError) -> bool:
    """Should KeyLM Free try its next model? Decommissioned, not found, rate limited, overloaded."""
    if isinstance(error, ModelUnavailable):
        return True
    if isinstance(error, RateLimited):
        return not error.out_of_credit
    return isinstance(error, UpstreamError) and (error.status or 0) >= 500
