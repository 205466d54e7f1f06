"""CSRF defence for cookie-authenticated writes, and the security headers on every response."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from flask import Flask, request

from shared.config import Settings
from shared.errors import APIError
from shared.web import get_settings

logger = logging.getLogger(__name__)

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}

# Strict: only our own static files run; model output rendered by the client can never execute.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class CSRFFailed(APIError):
    status, code = 403, "csrf_failed"
    message = "This request did not come from the KeyLM web app (Origin check failed)."


# Names of this machine: a page served on one of them can only be opened by someone on the machine.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


def _origin_of(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}".lower()


def accepted_origins(settings: Settings) -> tuple[str, ...]:
    """APP_BASE_URL's origin, CSRF_TRUSTED_ORIGINS, and, when the base URL is on loopback, both
    loopback spellings on its port (a browser at http://localhost:8000 is the same local app as one
    at http://127.0.0.1:8000, and docker's port mapping invites either)."""
    origins = [_origin_of(settings.app_base_url)]
    base = urlparse(settings.app_base_url)
    if (base.hostname or "").lower() in LOOPBACK_HOSTS:
        port = f":{base.port}" if base.port else ""
        origins += [f"{base.scheme}://{host}{port}" for host in LOOPBACK_HOSTS]
    origins += settings.csrf_trusted_origins
    return tuple(dict.fromkeys(origins))


def check_csrf() -> None:
    """A cookie-carrying write must come from an accepted origin (Origin, else Referer)."""
    settings = get_settings()
    if request.method not in STATE_CHANGING or settings.session_cookie_name not in request.cookies:
        return
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null" or _origin_of(source) not in accepted_origins(settings):
        raise CSRFFailed()


def init_security(app: Flask, settings: Settings) -> None:
    logger.info(
        "CSRF check accepts writes from these origins", extra={"origins": list(accepted_origins(settings))}
    )
    app.before_request(check_csrf)

    @app.after_request
    def add_security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            # Answers hold one user's data: no shared or browser cache keeps them (SSE says no-cache).
            response.headers.setdefault("Cache-Control", "no-store")
        if get_settings().cookie_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
