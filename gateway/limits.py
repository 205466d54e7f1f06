"""Rate limits (flask-limiter): on Redis when REDIS_URL is set, in memory otherwise or when Redis is down."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse
from marshmallow import fields

from shared.config import Settings
from shared.metrics import LIMITS_FALLBACK, LIMITS_ON_FALLBACK
from shared.web import get_settings

logger = logging.getLogger(__name__)

limiter = Limiter(key_func=get_remote_address)

# Failed logins of one email from every address, counted over this window to slow guessing down.
LOGIN_FAILURE_WINDOW = "1000/15 minutes"
# Added per failure past LOGIN_SLOWDOWN_AFTER_FAILURES, up to LOGIN_SLOWDOWN_MAX_SECONDS.
LOGIN_SLOWDOWN_STEP_SECONDS = 0.5


def init_limits(app: Flask, settings: Settings) -> None:
    app.config.update(
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        # A Redis that accepts connections but never answers must not hold a request for long:
        # past these, the limiter counts in memory instead (see below).
        RATELIMIT_STORAGE_OPTIONS=(
            {
                "socket_connect_timeout": settings.redis_connect_timeout,
                "socket_timeout": settings.redis_socket_timeout,
            }
            if settings.uses_redis
            else {}
        ),
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

    @app.after_request
    def count_requests_limited_in_memory(response):
        fallback = limits_on_fallback()
        LIMITS_ON_FALLBACK.labels("gateway").set(1 if fallback else 0)
        if fallback:
            LIMITS_FALLBACK.labels("gateway").inc()
        return response

    limiter.init_app(app)


def limits_on_fallback(probe: bool = False) -> bool:
    """True while REDIS_URL is set but the limits are counted in this process's memory (Redis is
    unreachable or too slow): they then hold per process, not for the whole deployment. `probe`
    also pings Redis (bounded by its timeouts), for a health check that must not wait for the next
    limited request to find out."""
    if not get_settings().uses_redis:
        return False
    # flask-limiter keeps this state privately; it has no public accessor for it.
    if getattr(limiter, "_storage_dead", False):
        return True
    if not probe:
        return False
    try:
        return not limiter.storage.check()
    except Exception:
        return True


# --- keys -----------------------------------------------------------------------------------------
def _hidden(kind: str, value: str) -> str:
    """A limit key that names a person without holding their email: keyed, so the counter's name in
    Redis or in flask-limiter's log lines cannot be matched against a list of addresses."""
    # surrogatepass: a lone surrogate in the body must not fail here (the service answers 400 for it).
    message = f"{kind}:{value}".encode("utf-8", "surrogatepass")
    digest = hmac.new(get_settings().auth_secret.encode(), message, hashlib.sha256)
    return f"{kind}:{digest.hexdigest()[:32]}"


def _email_in_body() -> str:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly nested JSON: no email here; the service answers 400
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    return email.strip().lower() if isinstance(email, str) else ""


def email_in_body() -> str:
    """Limit key: the email the body names (hashed), so one account is not tried from many IPs."""
    return _hidden("email", _email_in_body())


def email_and_ip() -> str:
    """Limit key for failed logins: this email from this address only, so an attacker elsewhere
    cannot lock the real user out."""
    return _hidden("email-ip", f"{_email_in_body()}|{get_remote_address()}")


def login_failed(response) -> bool:
    return response.status_code == 401


# --- login: slow down, never block, per email across addresses ------------------------------------
def login_slowdown_seconds() -> float:
    """How long to hold this login: grows with the email's recent failures from all addresses."""
    settings = get_settings()
    failures = _recent_failures(email_in_body())
    excess = failures - settings.login_slowdown_after + 1
    if excess <= 0:
        return 0.0
    return min(settings.login_slowdown_max_seconds, excess * LOGIN_SLOWDOWN_STEP_SECONDS)


def record_login_failure() -> None:
    _hit(email_in_body())


def _failure_key(key: str) -> tuple[str, ...]:
    return (get_settings().rate_limit_key_prefix, "login-failures", key)


def _recent_failures(key: str) -> int:
    window = parse(LOGIN_FAILURE_WINDOW)
    try:
        stats = limiter.limiter.get_window_stats(window, *_failure_key(key))
    except Exception as exc:  # the store is unreachable: do not slow anyone down for it
        logger.warning("login failure counter unavailable: %s", type(exc).__name__)
        return 0
    return window.amount - stats.remaining


def _hit(key: str) -> None:
    try:
        limiter.limiter.hit(parse(LOGIN_FAILURE_WINDOW), *_failure_key(key))
    except Exception as exc:
        logger.warning("login failure counter unavailable: %s", type(exc).__name__)


def hold(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)  # gevent-patched in the workers: other requests go on meanwhile


# --- limit values ---------------------------------------------------------------------------------
def login_per_ip() -> str:
    return f"{get_settings().login_limit_per_ip}/minute"


def login_per_email() -> str:
    return f"{get_settings().login_limit_per_email}/minute"


def register_per_ip() -> str:
    return f"{get_settings().register_limit_per_ip}/minute"


def per_minute() -> str:
    return f"{get_settings().rate_limit_per_minute}/minute"


def key_checks() -> str:
    return f"{get_settings().key_check_limit_per_minute}/minute"


def model_refreshes() -> str:
    return f"{get_settings().model_refresh_limit_per_minute}/minute"


def thread_creations() -> str:
    return f"{get_settings().thread_create_limit_per_minute}/minute"


def not_a_model_refresh() -> bool:
    """A model-list read that the cache can answer is free; a forced refresh calls the provider."""
    if request.method == "POST":
        return False
    return request.args.get("refresh", "").strip().lower() not in fields.Boolean.truthy
