"""Email confirmation in auth_service (SQLite and Postgres): the mailed single-use link, resending,
the user's `emailVerified`, and chat_service's internal question."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from auth_service.models import EmailVerificationToken
from shared.db import db, utcnow
from tests.integration.test_auth_service import AuthService, SignedIn, error_code, make_auth  # noqa: F401

CONFIRM = "/api/auth/email-verification/confirm"
REQUEST = "/api/auth/email-verification/request"
STATE = "/internal/email-verification"


@pytest.fixture
def auth(make_auth) -> AuthService:  # noqa: F811
    return make_auth(FREE_REQUIRE_VERIFIED_EMAIL="true", APP_BASE_URL="https://keylm.example.com")


def confirmation_tokens(auth: AuthService, address: str) -> list[str]:
    link = re.compile(r"https://keylm\.example\.com/verify-email\?token=(\S+)")
    tokens = []
    for mail in auth.mails():
        if mail["To"] == address:
            tokens += [unquote(t) for t in link.findall(mail.get_body(("plain",)).get_content())]
    return tokens


def confirm(auth: AuthService, token: str):
    return auth.caller.post(CONFIRM, json={"token": token})


def resend(auth: AuthService, who: SignedIn):
    return auth.caller.post(REQUEST, user_id=who.user_id, session_id=who.session_id)


def verified_for_chat(auth: AuthService, who: SignedIn) -> bool:
    response = auth.caller.get(STATE, user_id=who.user_id, caller="chat")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["emailVerified"]


def test_registration_mails_a_confirmation_link_and_the_user_starts_unverified(auth):
    who = auth.new_user("Ann@Example.com")

    assert who.user["emailVerified"] is False
    [mail] = [m for m in auth.mails() if m["To"] == "ann@example.com"]
    assert mail["Subject"] == "Confirm your KeyLM email"
    assert len(confirmation_tokens(auth, "ann@example.com")) == 1
    assert verified_for_chat(auth, who) is False


def test_without_the_requirement_registration_mails_nothing(make_auth):  # noqa: F811
    auth = make_auth()
    who = auth.new_user()

    assert who.user["emailVerified"] is False
    assert auth.mails() == []


def test_the_link_confirms_the_email_once(auth):
    who = auth.new_user("bea@example.com")
    [token] = confirmation_tokens(auth, "bea@example.com")

    first = confirm(auth, token)
    assert first.status_code == 200
    assert first.get_json()["user"] == {**who.user, "emailVerified": True}
    assert auth.me(who).get_json()["user"]["emailVerified"] is True
    assert verified_for_chat(auth, who) is True

    again = confirm(auth, token)
    assert again.status_code == 400
    assert error_code(again) == "invalid_token"


def test_confirming_one_link_spends_the_users_other_links(auth):
    who = auth.new_user("cy@example.com")
    assert resend(auth, who).status_code == 202
    first, second = confirmation_tokens(auth, "cy@example.com")

    assert confirm(auth, second).status_code == 200
    assert error_code(confirm(auth, first)) == "invalid_token"


@pytest.mark.parametrize("token", ["nope", "x" * 256])
def test_an_unknown_token_is_400_invalid_token(auth, token):
    response = confirm(auth, token)
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_token",
        "message": "This confirmation link is invalid, used or expired.",
        "retryable": False,
    }


def test_an_expired_link_is_refused(auth):
    who = auth.new_user("dee@example.com")
    [token] = confirmation_tokens(auth, "dee@example.com")
    with auth.app.app_context():
        db.session.execute(
            sa.update(EmailVerificationToken)
            .where(EmailVerificationToken.user_id == who.user_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()

    assert error_code(confirm(auth, token)) == "invalid_token"
    assert verified_for_chat(auth, who) is False


def test_the_token_is_stored_hashed(auth):
    who = auth.new_user("eve@example.com")
    [token] = confirmation_tokens(auth, "eve@example.com")
    with auth.app.app_context():
        stored = db.session.scalars(
            sa.select(EmailVerificationToken.token_hash).where(EmailVerificationToken.user_id == who.user_id)
        ).all()
    assert len(stored) == 1 and token not in stored[0]


def test_resend_mails_a_new_link_until_the_email_is_confirmed(auth):
    who = auth.new_user("fay@example.com")

    assert resend(auth, who).get_json() == {"ok": True}
    tokens = confirmation_tokens(auth, "fay@example.com")
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    confirm(auth, tokens[1])

    assert resend(auth, who).status_code == 202
    assert len(confirmation_tokens(auth, "fay@example.com")) == 2


def test_resend_needs_a_session(auth):
    response = auth.caller.post(REQUEST)
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


# The gateway is a caller auth accepts, but not here (403); keys, quota and auth itself are no callers
# of auth at all: their own signed credentials are refused before any route (401).
@pytest.mark.parametrize(
    ("caller", "status"), [("gateway", 403), ("keys", 401), ("quota", 401), ("auth", 401)]
)
def test_only_chat_may_ask_whether_an_email_is_confirmed(auth, caller, status):
    who = auth.new_user()
    response = auth.caller.get(STATE, user_id=who.user_id, caller=caller)
    assert response.status_code == status


@pytest.mark.parametrize(("method", "path"), [("POST", CONFIRM), ("POST", REQUEST), ("GET", STATE)])
def test_email_verification_routes_refuse_a_request_without_an_internal_credential(auth, method, path):
    response = auth.caller.client.open(path, method=method, json={"token": "t"})
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": 5}, {"token": "t", "extra": 1}])
def test_confirm_with_bad_input_is_a_validation_error(auth, body):
    response = auth.caller.post(CONFIRM, json=body)
    assert response.status_code == 400
    assert error_code(response) == "validation_error"
