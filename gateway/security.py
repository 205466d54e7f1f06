"""CSRF defence for cookie-authenticated writes, and the security headers on every response."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Flask, request

from gateway.sessions import COOKIE_NAME
from shared.errors import APIError
from shared.web import get_settings

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


def _origin_of(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}".lower()


def check_csrf() -> None:
    """A cookie-carrying write must come from our own origin (Origin, else Referer)."""
    if request.method not in STATE_CHANGING or COOKIE_NAME not in request.cookies:
        return
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null" or _origin_of(source) != _origin_of(get_settings().app_base_url):
        raise CSRFFailed()


def init_security(app: Flask) -> None:
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
