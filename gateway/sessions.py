"""Who is calling: the session cookie, checked by signature here and for revocation by auth_service."""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, request

from shared.errors import Unauthenticated
from shared.http import ServiceClient, error_from_response
from shared.tokens import TokenInvalid, session_codec
from shared.web import get_settings

# Over plain HTTP; with COOKIE_SECURE the cookie is `__Host-keylm_session` (Settings.session_cookie_name).
COOKIE_NAME = "keylm_session"


@dataclass(frozen=True)
class Identity:
    user_id: str
    session_id: str


def current_identity(client: ServiceClient) -> Identity | None:
    """The signed-in user of this request, or None; checked once per request."""
    if "identity" not in g:
        g.identity = _resolve(client, request.cookies.get(get_settings().session_cookie_name))
    return g.identity


def require_identity(client: ServiceClient) -> Identity:
    identity = current_identity(client)
    if identity is None:
        raise Unauthenticated()
    return identity


def _resolve(client: ServiceClient, token: str | None) -> Identity | None:
    if not token:
        return None
    try:
        claims = session_codec(get_settings()).decode(token)
    except TokenInvalid:
        return None
    user_id, session_id = claims.get("uid"), claims.get("sid")
    if not isinstance(user_id, str) or not isinstance(session_id, str):
        return None
    # The signature proves we issued it; only auth_service knows whether it was ended since
    # (logout, password reset), so a replayed cookie is refused.
    response = client.request("auth", "GET", f"/internal/sessions/{session_id}")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise error_from_response(response.status_code, _json_or_none(response), "auth")
    if response.json().get("session", {}).get("userId") != user_id:
        return None
    return Identity(user_id=user_id, session_id=session_id)


def _json_or_none(response):
    try:
        return response.json()
    except ValueError:
        return None
