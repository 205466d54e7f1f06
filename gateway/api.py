"""The public route table: every path of docs/api.md, each sent to the service that owns it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from flask import Blueprint, current_app, g, jsonify, request
from flask_limiter.util import get_remote_address

from gateway.limits import (
    email_and_ip,
    email_in_body,
    hold,
    key_checks,
    limiter,
    limits_on_fallback,
    login_failed,
    login_per_email,
    login_per_ip,
    login_slowdown_seconds,
    model_refreshes,
    not_a_model_refresh,
    per_minute,
    record_login_failure,
    register_per_ip,
    thread_creations,
)
from gateway.proxy import clear_session_cookie, forward
from gateway.sessions import current_identity, require_identity
from shared.errors import APIError, NotFound, Unauthenticated
from shared.http import CONNECT_TIMEOUT, ServiceClient
from shared.providers.registry import public_providers

bp = Blueprint("gateway", __name__)
# One route per documented operation (no catch-alls): a method a path does not have is the
# gateway's own 405 with the right `Allow`, before any session check.

BACKEND_SERVICES = ("auth", "keys", "chat", "quota")


def _client() -> ServiceClient:
    return current_app.extensions["keylm.client"]


def _refuse_dot_segments() -> None:
    """404 for a path with a `.` or `..` segment (sent as `%2e%2e`, `..%2f`, ...): the HTTP client
    would resolve it, walking the forwarded request out of /api/ into a service's /internal/ routes,
    where the gateway's own credential is trusted."""
    if any(segment in (".", "..") for segment in request.path.split("/")):
        raise NotFound()


def _as_user(service: str):
    """Forward for the signed-in user; 401 unauthenticated without a live session."""
    _refuse_dot_segments()
    try:
        identity = require_identity(_client())
    except Unauthenticated:
        g.drop_session_cookie = True
        raise
    return forward(_client(), service, identity)


def _public(service: str):
    _refuse_dot_segments()
    return forward(_client(), service, None)


def _user_or_ip() -> str:
    try:
        identity = current_identity(_client())
    except APIError:
        # auth_service is down: key by address and let the view answer its 503. An error raised here
        # would read to flask-limiter as "Redis is down" and move every limit into process memory.
        identity = None
    return f"user:{identity.user_id}" if identity else f"ip:{get_remote_address()}"


@bp.after_app_request
def drop_dead_session_cookie(response):
    if g.get("drop_session_cookie"):
        clear_session_cookie(response)
    return response


# --- auth -------------------------------------------------------------------------------------
@bp.post("/api/auth/login")
@limiter.limit(login_per_ip)
# Only failures count, and only from this address: someone guessing elsewhere cannot lock the
# real user out. Across addresses the same email is slowed down instead (login_slowdown_seconds).
@limiter.limit(login_per_email, key_func=email_and_ip, deduct_when=login_failed)
def login():
    hold(login_slowdown_seconds())
    response = _public("auth")
    if login_failed(response):
        record_login_failure()
    return response


@bp.post("/api/auth/register")
@limiter.limit(register_per_ip)
def register():
    return _public("auth")


@bp.post("/api/auth/password-reset/request")
@limiter.limit(per_minute)
@limiter.limit(per_minute, key_func=email_in_body)
def password_reset_request():
    return _public("auth")


@bp.post("/api/auth/password-reset/confirm")
@limiter.limit(per_minute)
def password_reset_confirm():
    return _public("auth")


@bp.post("/api/auth/email-verification/request")
@limiter.limit(per_minute, key_func=_user_or_ip)
def email_verification_request():
    return _as_user("auth")


@bp.post("/api/auth/email-verification/confirm")
@limiter.limit(per_minute)
def email_verification_confirm():
    return _public("auth")


@bp.post("/api/auth/logout")
@bp.get("/api/auth/me")
def auth_session_routes():
    return _as_user("auth")


# --- providers, keys and models ---------------------------------------------------------------
@bp.get("/api/providers")
def providers():
    """The registered providers' public metadata (names, key hints, badges): the client's lists."""
    return jsonify(providers=public_providers())


@bp.route("/api/providers/<provider>/keys", methods=["GET", "POST"])
@bp.post("/api/providers/<provider>/keys/<key_id>/validate")
@bp.delete("/api/providers/<provider>/keys/<key_id>")
# Adding and re-validating both call the provider with the submitted key: limited together, per
# user and per address, so KeyLM cannot be used to check stolen keys in bulk.
@limiter.limit(key_checks, key_func=_user_or_ip, methods=["POST"])
@limiter.limit(key_checks, key_func=get_remote_address, methods=["POST"])
def provider_keys(provider: str, key_id: str = ""):
    return _as_user("keys")


@bp.get("/api/providers/<provider>/models")
@bp.post("/api/providers/<provider>/models/refresh")
@limiter.limit(model_refreshes, key_func=_user_or_ip, exempt_when=not_a_model_refresh)
@limiter.limit(model_refreshes, key_func=get_remote_address, exempt_when=not_a_model_refresh)
def provider_models(provider: str):
    return _as_user("chat")


# --- threads, messages, usage -----------------------------------------------------------------
@bp.post("/api/threads/<thread_id>/messages")
@limiter.limit(per_minute, key_func=_user_or_ip)
def send_message(thread_id: str):
    return _as_user("chat")


@bp.route("/api/threads", methods=["GET", "POST"])
@bp.route("/api/threads/<thread_id>", methods=["GET", "PATCH", "DELETE"])
@limiter.limit(thread_creations, key_func=_user_or_ip, methods=["POST"])
@limiter.limit(thread_creations, key_func=get_remote_address, methods=["POST"])
def threads(thread_id: str = ""):
    return _as_user("chat")


@bp.get("/api/usage/free")
def usage():
    return _as_user("quota")


# --- health -----------------------------------------------------------------------------------
def _service_status(client: ServiceClient, service: str) -> str:
    try:
        response = client.session.get(client.urls[service] + "/healthz", timeout=(CONNECT_TIMEOUT, 5))
    except requests.RequestException:
        return "down"
    return "ok" if response.status_code == 200 else "degraded"


@bp.get("/api/healthz")
def healthz():
    client = _client()
    with ThreadPoolExecutor(max_workers=len(BACKEND_SERVICES)) as pool:
        statuses = dict(
            zip(
                BACKEND_SERVICES,
                pool.map(lambda s: _service_status(client, s), BACKEND_SERVICES),
                strict=True,
            )
        )
    healthy = all(status == "ok" for status in statuses.values())
    # Limits counted per process while Redis is unreachable still hold, but only per process:
    # "degraded" (the metric keylm_rate_limits_in_memory_fallback says the same), not down.
    limits = "memory-fallback" if limits_on_fallback(probe=True) else "ok"
    status = "ok" if healthy and limits == "ok" else "degraded"
    body = {"status": status, "services": statuses, "rateLimits": limits}
    return jsonify(body), 200 if healthy else 503
