"""Calls between KeyLM services: pooled sessions, timeouts, the internal credential, request ids."""

from __future__ import annotations

import http.cookiejar
import json
import logging
from typing import Any

import requests
from flask import g, has_request_context
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from shared.config import Settings
from shared.errors import APIError, ServiceUnavailable
from shared.internal_auth import HEADER as CREDENTIAL_HEADER
from shared.internal_auth import InternalCredentials

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0


# Connections kept per host: as many as one gevent worker may have streams open at once, so a
# busy worker reuses connections instead of opening and discarding one per request.
POOL_SIZE = 2000


def pooled_session(retry: Retry | None = None, *, internal: bool = False) -> requests.Session:
    """A requests session whose pool fits a gevent worker's concurrency; no cookies kept.

    `internal`: calls between our services ignore proxy settings from the environment (a
    deployment may need HTTPS_PROXY to reach the providers, never to reach itself)."""
    session = requests.Session()
    session.trust_env = not internal
    session.cookies.set_policy(_NoCookies())
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=POOL_SIZE, max_retries=retry or 0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Provider and service responses must not plant cookies shared by every user's requests."""

    def set_ok(self, cookie, request):
        return False


class ServiceClient:
    """One caller's client for the other services (`client.call("keys", "GET", "/...")`)."""

    def __init__(self, settings: Settings, caller: str):
        self.caller = caller
        self.urls = dict(settings.service_urls)
        self.credentials = InternalCredentials(caller, settings.private_key(caller))
        # Only idempotent requests are retried, and only when the connection failed.
        retry = Retry(
            total=2, connect=2, read=0, status=0, backoff_factor=0.05, allowed_methods={"GET", "HEAD"}
        )
        self.session = pooled_session(retry, internal=True)

    def headers(
        self,
        service: str,
        method: str,
        path: str,
        body: bytes = b"",
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, str]:
        """The signed credential for exactly this request (and the request id to pass on)."""
        credential = self.credentials.issue(service, method, path, body, user_id, session_id)
        headers = {CREDENTIAL_HEADER: credential}
        if has_request_context() and "request_id" in g:
            headers["X-Request-Id"] = g.request_id
        return headers

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        stream: bool = False,
        read_timeout: float = READ_TIMEOUT,
        extra_headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; a service that cannot be reached raises 503 service_unavailable."""
        headers = dict(extra_headers or {})
        # The credential signs the body's exact bytes: serialise it here, not inside requests.
        if "json" in kwargs:
            kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
            headers.setdefault("Content-Type", "application/json")
        body = kwargs.get("data") or b""
        if isinstance(body, str):
            body = kwargs["data"] = body.encode()
        headers.update(self.headers(service, method, path, body, user_id, session_id))
        try:
            return self.session.request(
                method,
                self.urls[service] + path,
                headers=headers,
                stream=stream,
                timeout=(CONNECT_TIMEOUT, read_timeout),
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as exc:
            logger.warning("%s service unreachable: %s", service, type(exc).__name__)
            raise ServiceUnavailable(f"The {service} service is unavailable.") from None

    def call(self, service: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Send a request and return its JSON body; an error envelope is raised as an APIError."""
        response = self.request(service, method, path, **kwargs)
        if response.status_code == 204:
            return {}
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok and isinstance(body, dict):
            return body
        raise error_from_response(response.status_code, body, service)


def error_from_response(status: int, body: Any, service: str) -> APIError:
    """Rebuild another service's error envelope so it passes through unchanged."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "code" in error:
        return APIError(
            error.get("message"),
            code=error["code"],
            status=status,
            retryable=bool(error.get("retryable")),
            details=error.get("details"),
        )
    if status >= 500:
        return ServiceUnavailable(f"The {service} service is unavailable.")
    return APIError(status=status)
