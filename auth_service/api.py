"""auth_service HTTP API (reached only through the gateway, with an internal credential)."""

from flask import Blueprint, Response, current_app, jsonify

from auth_service import services
from auth_service.schemas import (
    CredentialsSchema,
    LoginSchema,
    ResetConfirmSchema,
    ResetRequestSchema,
    UserSchema,
    VerifyEmailSchema,
)
from shared.errors import NotFound, Unauthenticated
from shared.internal_auth import Caller
from shared.tokens import CLEAR_SESSION_HEADER, SET_SESSION_HEADER
from shared.web import current_caller, get_settings, load_json

bp = Blueprint("auth", __name__)

user_schema = UserSchema()


def _signed_in_response(signed_in: services.SignedIn, status: int) -> Response:
    response = jsonify({"user": user_schema.dump(signed_in.user)})
    response.status_code = status
    response.headers[SET_SESSION_HEADER] = signed_in.session_token
    return response


def _session_caller() -> Caller:
    caller = current_caller()
    if not caller.user_id or not caller.session_id:
        raise Unauthenticated()
    return caller


@bp.post("/api/auth/register")
def register():
    data = load_json(CredentialsSchema())
    signed_in = services.register_user(get_settings(), data["email"], data["password"])
    return _signed_in_response(signed_in, 201)


@bp.post("/api/auth/login")
def login():
    data = load_json(LoginSchema())
    signed_in = services.authenticate(get_settings(), data["email"], data["password"])
    return _signed_in_response(signed_in, 200)


@bp.post("/api/auth/logout")
def logout():
    services.end_session(_session_caller().session_id)
    return "", 204, {CLEAR_SESSION_HEADER: "1"}


@bp.get("/api/auth/me")
def me():
    user = services.get_user(_session_caller().user_id)
    if user is None:
        raise Unauthenticated()
    return {"user": user_schema.dump(user)}


@bp.post("/api/auth/password-reset/request")
def password_reset_request():
    data = load_json(ResetRequestSchema())
    services.request_password_reset(current_app.extensions["keylm.jobs"], data["email"])
    return {"ok": True}, 202


@bp.post("/api/auth/password-reset/confirm")
def password_reset_confirm():
    data = load_json(ResetConfirmSchema())
    services.confirm_password_reset(get_settings(), data["token"], data["password"])
    return {"ok": True}


@bp.post("/api/auth/email-verification/request")
def email_verification_request():
    services.request_email_verification(get_settings(), _session_caller().user_id)
    return {"ok": True}, 202


@bp.post("/api/auth/email-verification/confirm")
def email_verification_confirm():
    data = load_json(VerifyEmailSchema())
    return {"user": user_schema.dump(services.confirm_email_verification(data["token"]))}


@bp.get("/internal/email-verification")
def email_verification_state():
    """For chat_service: has the credential's user confirmed their email?"""
    caller = current_caller()
    caller.require_service("chat")
    return {"emailVerified": services.is_email_verified(caller.require_user())}


@bp.get("/internal/sessions/<session_id>")
def resolve_session(session_id: str):
    """For the gateway: is this session live, and whose is it?"""
    current_caller().require_service("gateway")
    user_id = services.live_session_user(session_id)
    if user_id is None:
        raise NotFound("No such live session.")
    return {"session": {"id": session_id, "userId": user_id}}
