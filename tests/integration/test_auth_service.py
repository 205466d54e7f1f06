"""auth_service on a real database (SQLite and Postgres), called the way the gateway calls it."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from flask import Flask

import auth_service.services
from auth_service.app import create_app
from auth_service.models import PasswordResetToken, Session, User
from shared.config import Settings
from shared.db import db, utcnow
from shared.internal_auth import HEADER, InternalCredentials
from shared.signing import new_private_key, parse_private_key
from shared.tokens import CLEAR_SESSION_HEADER, SET_SESSION_HEADER, session_codec
from tests.conftest import unique_email
from tests.integration.conftest import ServiceCaller, migrated_app

PASSWORD = "correct horse battery"


@dataclass
class SignedIn:
    user: dict
    user_id: str
    session_id: str


class AuthService:
    """auth_service in process, with helpers that speak its API as the gateway does."""

    def __init__(self, app: Flask):
        self.app = app
        self.settings: Settings = app.extensions["keylm.settings"]
        self.caller = ServiceCaller(app, "auth")

    def register(self, email_: str, password: str = PASSWORD):
        return self.caller.post("/api/auth/register", json={"email": email_, "password": password})

    def login(self, email_: str, password: str = PASSWORD):
        return self.caller.post("/api/auth/login", json={"email": email_, "password": password})

    def signed_in(self, response) -> SignedIn:
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        claims = session_codec(self.settings).decode(response.headers[SET_SESSION_HEADER])
        return SignedIn(user=response.get_json()["user"], user_id=claims["uid"], session_id=claims["sid"])

    def new_user(self, email_: str | None = None, password: str = PASSWORD) -> SignedIn:
        return self.signed_in(self.register(email_ or unique_email(), password))

    def me(self, who: SignedIn):
        return self.caller.get("/api/auth/me", user_id=who.user_id, session_id=who.session_id)

    def session_is_live(self, who: SignedIn) -> bool:
        response = self.caller.get(f"/internal/sessions/{who.session_id}")
        assert response.status_code in (200, 404), response.get_data(as_text=True)
        return response.status_code == 200

    def request_reset(self, email_: str):
        """Ask for a reset, then wait for the queued mail job (it runs outside the request)."""
        response = self.caller.post("/api/auth/password-reset/request", json={"email": email_})
        assert self.app.extensions["keylm.jobs"].wait_idle(10)
        return response

    def confirm_reset(self, token: str, password: str):
        return self.caller.post(
            "/api/auth/password-reset/confirm", json={"token": token, "password": password}
        )

    @property
    def outbox(self) -> Path:
        return self.settings.mail_outbox_dir

    def mails(self) -> list[email.message.EmailMessage]:
        if not self.outbox.exists():
            return []
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted(self.outbox.glob("*.eml"))
        ]

    def reset_tokens_mailed_to(self, address: str) -> list[str]:
        link = re.compile(re.escape(self.settings.app_base_url) + r"/reset\?token=(\S+)")
        tokens = []
        for mail in self.mails():
            if mail["To"] == address:
                tokens += [unquote(t) for t in link.findall(mail.get_body(("plain",)).get_content())]
        return tokens

    def reset_token_for(self, address: str) -> str:
        assert self.request_reset(address).status_code == 202
        return self.reset_tokens_mailed_to(address.strip().lower())[-1]


@pytest.fixture
def make_auth(settings_for):
    apps: list[Flask] = []

    def build(**env: str) -> AuthService:
        apps.append(migrated_app(create_app, settings_for(**env)))
        return AuthService(apps[-1])

    yield build
    for app in apps:  # pooled connections would make dropping the test database slow
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def auth(make_auth) -> AuthService:
    return make_auth()


def error_code(response) -> str:
    body = response.get_json()
    assert set(body) == {"error"}
    assert {"code", "message", "retryable"} <= set(body["error"])
    return body["error"]["code"]


class Clock:
    """Moves auth_service's notion of now (services.utcnow) forward."""

    def __init__(self, monkeypatch):
        self.offset = timedelta()
        monkeypatch.setattr(auth_service.services, "utcnow", lambda: utcnow() + self.offset)

    def advance(self, **delta) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


# --- register / login / me / logout -----------------------------------------------------------
def test_register_creates_user_and_first_session(auth):
    address = unique_email()

    response = auth.register(address)

    assert response.status_code == 201
    user = response.get_json()["user"]
    assert set(user) == {"id", "email", "createdAt", "emailVerified"}
    assert user["emailVerified"] is False
    assert user["email"] == address
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", user["createdAt"])
    who = auth.signed_in(response)
    assert who.user_id == user["id"]
    assert auth.session_is_live(who)


def test_register_response_holds_no_password_or_hash(auth):
    response = auth.register(unique_email(), "a-unique-Passw0rd")

    text = response.get_data(as_text=True)
    assert "a-unique-Passw0rd" not in text
    assert "$2b$" not in text
    assert "password" not in text.lower()


def test_login_starts_a_new_session_for_the_same_user(auth):
    first = auth.new_user()

    second = auth.signed_in(auth.login(first.user["email"]))

    assert second.user_id == first.user_id
    assert second.session_id != first.session_id
    assert auth.session_is_live(first) and auth.session_is_live(second)


def test_me_returns_the_callers_user(auth):
    who = auth.new_user()

    response = auth.me(who)

    assert response.status_code == 200
    assert response.get_json() == {"user": who.user}


def test_me_without_a_session_in_the_credential_is_401(auth):
    who = auth.new_user()

    response = auth.caller.get("/api/auth/me", user_id=who.user_id)

    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


def test_me_for_an_unknown_user_is_401(auth):
    response = auth.caller.get("/api/auth/me", user_id="no-such-user", session_id="no-such-session")

    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


def test_logout_ends_the_session_and_asks_to_clear_the_cookie(auth):
    who = auth.new_user()
    other = auth.signed_in(auth.login(who.user["email"]))

    response = auth.caller.post("/api/auth/logout", user_id=who.user_id, session_id=who.session_id)

    assert response.status_code == 204
    assert response.headers[CLEAR_SESSION_HEADER]
    assert not auth.session_is_live(who)
    assert auth.session_is_live(other)  # only that session ends


def test_session_expires_after_session_ttl(auth, clock):
    who = auth.new_user()

    clock.advance(hours=auth.settings.session_ttl_hours, minutes=1)

    assert not auth.session_is_live(who)


# --- emails -----------------------------------------------------------------------------------
def test_email_is_stored_lowercased(auth):
    local = unique_email().split("@")[0]

    response = auth.register(f"{local.upper()}@Example.COM")

    assert response.status_code == 201
    assert response.get_json()["user"]["email"] == f"{local}@example.com"


@pytest.mark.parametrize("variant", [str.upper, str.title, lambda e: e.swapcase()])
def test_login_email_is_case_insensitive(auth, variant):
    address = unique_email()
    who = auth.new_user(address)

    response = auth.login(variant(address))

    assert response.status_code == 200
    assert auth.signed_in(response).user_id == who.user_id


@pytest.mark.parametrize("variant", [str, str.upper, str.title])
def test_registering_a_taken_email_is_409_email_taken(auth, variant):
    address = unique_email()
    auth.new_user(address)

    response = auth.register(variant(address), "another password")

    assert response.status_code == 409
    assert error_code(response) == "email_taken"
    assert auth.login(address).status_code == 200  # the first account is untouched


def test_failed_registration_does_not_leave_a_session_behind(auth):
    address = unique_email()
    auth.new_user(address)
    with auth.app.app_context():
        sessions_before = db.session.scalar(sa.select(sa.func.count()).select_from(Session))

    auth.register(address.upper())

    with auth.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Session)) == sessions_before


def test_wrong_password_and_unknown_email_answer_byte_identically(auth):
    address = unique_email()
    auth.new_user(address)

    wrong_password = auth.login(address, "not the password")
    unknown_email = auth.login(unique_email(), "not the password")

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert error_code(wrong_password) == "invalid_credentials"
    assert wrong_password.get_data() == unknown_email.get_data()
    assert SET_SESSION_HEADER not in wrong_password.headers
    assert SET_SESSION_HEADER not in unknown_email.headers


# --- passwords: length and bcrypt's 72 bytes --------------------------------------------------
LONG_PASSWORDS = {
    # (password, another sharing its first 72 bytes)
    "80-ascii-chars": ("A" * 72 + "-tail-01", "A" * 72 + "-tail-02"),
    "100-multibyte-chars": ("ü" * 100, "ü" * 36 + "u" * 64),
    "100-cjk-chars": ("鍵" * 100, "鍵" * 24 + "k" * 76),
}


@pytest.mark.parametrize(("password", "twin"), list(LONG_PASSWORDS.values()), ids=list(LONG_PASSWORDS))
def test_password_over_72_bytes_is_not_truncated(auth, password, twin):
    assert len(password.encode()) > 72 and password.encode()[:72] == twin.encode()[:72]
    address = unique_email()

    assert auth.register(address, password).status_code == 201

    assert auth.login(address, password).status_code == 200
    refused = auth.login(address, twin)
    assert refused.status_code == 401
    assert error_code(refused) == "invalid_credentials"


@pytest.mark.parametrize(
    ("length", "status"), [(7, 400), (8, 201), (128, 201), (129, 400)], ids=["7", "8", "128", "129"]
)
def test_register_password_length_is_8_to_128_characters(auth, length, status):
    response = auth.register(unique_email(), "p" * length)

    assert response.status_code == status
    if status == 400:
        assert error_code(response) == "validation_error"
        assert list(response.get_json()["error"]["details"]["fields"]) == ["password"]


# --- password reset ---------------------------------------------------------------------------
def test_reset_request_for_known_email_mails_a_link_with_a_token(auth):
    address = unique_email()
    auth.new_user(address)

    response = auth.request_reset(address)

    assert response.status_code == 202
    assert response.get_json() == {"ok": True}
    [mail] = auth.mails()
    assert mail["To"] == address
    assert mail["From"] == auth.settings.mail_from
    assert "reset" in mail["Subject"].lower()
    assert len(auth.reset_tokens_mailed_to(address)) == 1


def test_reset_request_email_is_case_insensitive(auth):
    address = unique_email()
    auth.new_user(address)

    assert auth.request_reset(address.upper()).status_code == 202

    assert len(auth.reset_tokens_mailed_to(address)) == 1


def test_reset_request_for_unknown_email_mails_nothing_and_answers_the_same(auth):
    known = unique_email()
    auth.new_user(known)

    unknown_response = auth.request_reset(unique_email())
    assert auth.mails() == []
    known_response = auth.request_reset(known)

    assert unknown_response.status_code == known_response.status_code == 202
    assert unknown_response.get_data() == known_response.get_data()
    assert len(auth.mails()) == 1


def test_reset_token_is_stored_only_as_its_hash(auth):
    address = unique_email()
    auth.new_user(address)

    token = auth.reset_token_for(address)

    with auth.app.app_context():
        stored = [
            str(getattr(row, column.key))
            for model in (User, Session, PasswordResetToken)
            for row in db.session.scalars(sa.select(model))
            for column in sa.inspect(model).columns
        ]
        [token_row] = db.session.scalars(sa.select(PasswordResetToken)).all()
        assert token_row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 32
    assert not any(token in value for value in stored)


def test_reset_confirm_sets_the_new_password(auth):
    address = unique_email()
    auth.new_user(address)
    token = auth.reset_token_for(address)

    response = auth.confirm_reset(token, "a brand new password")

    assert response.status_code == 200
    assert response.get_json() == {"ok": True}
    assert auth.login(address, "a brand new password").status_code == 200
    assert auth.login(address, PASSWORD).status_code == 401


def test_reset_confirm_ends_every_session_of_that_user(auth):
    address = unique_email()
    first = auth.new_user(address)
    second = auth.signed_in(auth.login(address))
    bystander = auth.new_user()
    token = auth.reset_token_for(address)

    assert auth.confirm_reset(token, "a brand new password").status_code == 200

    assert not auth.session_is_live(first)
    assert not auth.session_is_live(second)
    assert auth.session_is_live(bystander)


def test_reset_token_works_only_once(auth):
    address = unique_email()
    auth.new_user(address)
    token = auth.reset_token_for(address)
    assert auth.confirm_reset(token, "first new password").status_code == 200

    second_use = auth.confirm_reset(token, "second new password")

    assert second_use.status_code == 400
    assert error_code(second_use) == "invalid_token"
    assert auth.login(address, "first new password").status_code == 200
    assert auth.login(address, "second new password").status_code == 401


@pytest.mark.parametrize("token", ["not-a-real-token", "x" * 256, "a" * 43])
def test_unknown_reset_token_is_400_invalid_token(auth, token):
    response = auth.confirm_reset(token, "a brand new password")

    assert response.status_code == 400
    assert error_code(response) == "invalid_token"


def test_reset_token_is_refused_once_its_ttl_has_passed(make_auth, clock):
    auth = make_auth(PASSWORD_RESET_TTL_MINUTES="1")
    address = unique_email()
    auth.new_user(address)
    token = auth.reset_token_for(address)

    clock.advance(seconds=61)
    response = auth.confirm_reset(token, "a brand new password")

    assert response.status_code == 400
    assert error_code(response) == "invalid_token"
    assert auth.login(address, PASSWORD).status_code == 200


def test_reset_token_still_works_just_before_its_ttl(make_auth, clock):
    auth = make_auth(PASSWORD_RESET_TTL_MINUTES="1")
    address = unique_email()
    auth.new_user(address)
    token = auth.reset_token_for(address)

    clock.advance(seconds=55)

    assert auth.confirm_reset(token, "a brand new password").status_code == 200


def test_reset_token_expired_in_the_database_is_refused(auth):
    address = unique_email()
    auth.new_user(address)
    token = auth.reset_token_for(address)
    with auth.app.app_context():
        db.session.execute(sa.update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()

    response = auth.confirm_reset(token, "a brand new password")

    assert response.status_code == 400
    assert error_code(response) == "invalid_token"


def test_reset_confirm_with_invalid_password_does_not_spend_the_token(auth):
    address = unique_email()
    auth.new_user(address)
    token = auth.reset_token_for(address)

    too_long = auth.confirm_reset(token, "p" * 129)
    assert too_long.status_code == 400
    assert error_code(too_long) == "validation_error"

    assert auth.confirm_reset(token, "p" * 128).status_code == 200
    assert auth.login(address, "p" * 128).status_code == 200


def test_reset_mail_link_uses_app_base_url(make_auth):
    auth = make_auth(APP_BASE_URL="https://keylm.example.com")
    address = unique_email()
    auth.new_user(address)

    auth.request_reset(address)

    [mail] = auth.mails()
    assert "https://keylm.example.com/reset?token=" in mail.get_body(("plain",)).get_content()


# --- the internal credential ------------------------------------------------------------------
ROUTES = [
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/me"),
    ("POST", "/api/auth/password-reset/request"),
    ("POST", "/api/auth/password-reset/confirm"),
    ("GET", "/internal/sessions/some-session"),
]


def forged_credentials(settings: Settings, method: str, path: str) -> dict[str, str]:
    """Credentials that must not open `method path` (sent with the body `{}`)."""
    body = b"{}"
    real = InternalCredentials("gateway", settings.private_key("gateway"))
    token = real.issue("auth", method, path, body, "u", "s")
    stale = InternalCredentials("gateway", settings.private_key("gateway"), clock=lambda: 0)
    other_key = InternalCredentials("gateway", parse_private_key(new_private_key()))
    return {
        "garbage": "garbage",
        "other-secret": other_key.issue("auth", method, path, body, "u", "s"),
        "other-audience": real.issue("keys", method, path, body, "u", "s"),
        "expired": stale.issue("auth", method, path, body),
        "tampered": token[:-5] + ("AAAAA" if token[-5:] != "AAAAA" else "BBBBB"),
        # Signed by a service auth does not accept (keys never calls auth).
        "uninvited-caller": InternalCredentials("keys", settings.private_key("keys")).issue(
            "auth", method, path, body, "u", "s"
        ),
        "other-path": real.issue("auth", method, path + "x", body, "u", "s"),
        "other-body": real.issue("auth", method, path, b'{"a":1}', "u", "s"),
    }


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_request_without_internal_credential_is_401(auth, method, path):
    response = auth.caller.client.open(path, method=method, json={})

    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


@pytest.mark.parametrize(
    "forgery",
    [
        "garbage",
        "other-secret",
        "other-audience",
        "expired",
        "tampered",
        "uninvited-caller",
        "other-path",
        "other-body",
    ],
)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_request_with_forged_internal_credential_is_401(auth, method, path, forgery):
    credential = forged_credentials(auth.settings, method, path)[forgery]

    response = auth.caller.client.open(
        path, method=method, data=b"{}", content_type="application/json", headers={HEADER: credential}
    )

    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


def test_register_without_credential_creates_no_user(auth):
    address = unique_email()

    auth.caller.client.post("/api/auth/register", json={"email": address, "password": PASSWORD})

    assert auth.register(address).status_code == 201


def test_identity_headers_do_not_replace_the_credential(auth):
    who = auth.new_user()
    victim = auth.new_user()

    response = auth.caller.get(
        "/api/auth/me",
        user_id=who.user_id,
        session_id=who.session_id,
        headers={"X-User-Id": victim.user_id, "X-Forwarded-User": victim.user_id},
    )

    assert response.get_json()["user"]["id"] == who.user_id


def test_internal_sessions_answers_the_gateway(auth):
    who = auth.new_user()

    response = auth.caller.get(f"/internal/sessions/{who.session_id}", caller="gateway")

    assert response.status_code == 200
    assert response.get_json() == {"session": {"id": who.session_id, "userId": who.user_id}}


# chat is a caller auth accepts, but not here (403); keys, quota and auth are no callers of auth:
# their signed credentials are refused before any route (401).
@pytest.mark.parametrize(
    ("service", "status", "code"),
    [
        ("chat", 403, "forbidden"),
        ("keys", 401, "unauthenticated"),
        ("quota", 401, "unauthenticated"),
        ("auth", 401, "unauthenticated"),
    ],
)
def test_internal_sessions_refuses_a_non_gateway_caller(auth, service, status, code):
    who = auth.new_user()

    response = auth.caller.get(f"/internal/sessions/{who.session_id}", caller=service)

    assert response.status_code == status
    assert error_code(response) == code


def test_internal_sessions_is_404_for_an_unknown_session(auth):
    response = auth.caller.get("/internal/sessions/no-such-session")

    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_healthz_is_open_and_checks_the_database(auth):
    response = auth.caller.client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "service": "auth", "checks": {"database": "ok"}}


def test_unknown_email_dummy_hash_is_built_when_auth_starts(settings_for):
    settings = settings_for(BCRYPT_ROUNDS="5")
    auth_service.services.dummy_hash.cache_clear()

    create_app(settings)

    assert auth_service.services.dummy_hash.cache_info().currsize == 1
    hits = auth_service.services.dummy_hash.cache_info().hits
    auth_service.services.dummy_hash(settings.bcrypt_rounds, settings.password_pepper)
    assert auth_service.services.dummy_hash.cache_info().hits == hits + 1  # no new hash at login time
