"""Rate limits (flask-limiter): on Redis when REDIS_URL is set, in memory otherwise or when Redis is down."""

from __future__ import annotations

import logging

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from shared.config import Settings
from shared.web import get_settings

logger = logging.getLogger(__name__)

limiter = Limiter(key_func=get_remote_address)


def init_limits(app: Flask, settings: Settings) -> None:
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_KEY_PREFIX=settings.rate_limit_key_prefix,
        RATELIMIT_STRATEGY="moving-window",
        RATELIMIT_HEADERS_ENABLED=True,  # without it there is no Retry-After
        # If Redis goes away, count in memory (per process) rather than refuse or stop limiting;
        # flask-limiter logs the switch and moves back once Redis answers again.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
    )
    if not settings.redis_url:
        logger.info("rate limits are kept in memory (REDIS_URL is not set)")

    # Registered before the limiter, so it runs after the limiter's own header injection
    # (Flask runs after_request hooks in reverse), which sets Retry-After on every response.
    @app.after_request
    def retry_after_only_when_refused(response):
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response

    limiter.init_app(app)


def email_in_body() -> str:
    """Limit key for login: the email being tried, so one account can't be brute-forced from many IPs."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly nested JSON: no email here; the service answers 400
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    return "email:" + (email.strip().lower() if isinstance(email, str) else "")


def login_per_ip() -> str:
    return f"{get_settings().login_limit_per_ip}/minute"


def login_per_email() -> str:
    return f"{get_settings().login_limit_per_email}/minute"


def register_per_ip() -> str:
    return f"{get_settings().register_limit_per_ip}/minute"


def per_minute() -> str:
    return f"{get_settings().rate_limit_per_minute}/minute"
