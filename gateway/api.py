"""The public route table: every path of api.md, each sent to the service that owns it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from flask import Blueprint, current_app, g, jsonify
from flask_limiter.util import get_remote_address

from gateway.limits import (
    email_in_body,
    limiter,
    login_per_email,
    login_per_ip,
    per_minute,
    register_per_ip,
)
from gateway.proxy import clear_session_cookie, forward
from gateway.sessions import current_identity, require_identity
from shared.errors import Unauthenticated
from shared.http import CONNECT_TIMEOUT, ServiceClient

bp = Blueprint("gateway", __name__)

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
BACKEND_SERVICES = ("auth", "keys", "chat", "quota")


def _client() -> ServiceClient:
    return current_app.extensions["keylm.client"]


def _as_user(service: str):
    """Forward for the signed-in user; 401 unauthenticated without a live session."""
    try:
        identity = require_identity(_client())
    except Unauthenticated:
        g.drop_session_cookie = True
        raise
    return forward(_client(), service, identity)


def _public(service: str):
    return forward(_client(), service, None)


def _user_or_ip() -> str:
    identity = current_identity(_client())
    return f"user:{identity.user_id}" if identity else f"ip:{get_remote_address()}"


@bp.after_app_request
def drop_dead_session_cookie(response):
    if g.get("drop_session_cookie"):
        clear_session_cookie(response)
    return response


# --- auth -------------------------------------------------------------------------------------
@bp.post("/api/auth/login")
@limiter.limit(login_per_ip)
@limiter.limit(login_per_email, key_func=email_in_body)
def login():
    return _public("auth")


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


@bp.route("/api/auth/<path:rest>", methods=ALL_METHODS)
def auth_session_routes(rest: str):
    return _as_user("auth")


# --- keys and models --------------------------------------------------------------------------
@bp.route("/api/providers/<provider>/keys", methods=["GET", "POST"])
@bp.route("/api/providers/<provider>/keys/<path:rest>", methods=ALL_METHODS)
def provider_keys(provider: str, rest: str = ""):
    return _as_user("keys")


@bp.get("/api/providers/<provider>/models")
@bp.post("/api/providers/<provider>/models/refresh")
def provider_models(provider: str):
    return _as_user("chat")


# --- threads, messages, usage -----------------------------------------------------------------
@bp.post("/api/threads/<thread_id>/messages")
@limiter.limit(per_minute, key_func=_user_or_ip)
def send_message(thread_id: str):
    return _as_user("chat")


@bp.route("/api/threads", methods=["GET", "POST"])
@bp.route("/api/threads/<path:rest>", methods=ALL_METHODS)
def threads(rest: str = ""):
    return _as_user("chat")


@bp.route("/api/usage/<path:rest>", methods=ALL_METHODS)
def usage(rest: str):
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
    body = {"status": "ok" if healthy else "degraded", "services": statuses}
    return jsonify(body), 200 if healthy else 503
