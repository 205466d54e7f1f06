"""Accounts end to end through the gateway: sessions, cookies, password reset, login rate limits."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
import sqlite3
import time
from pathlib import Path
from urllib.parse import unquote

import bcrypt
import psycopg2
import pytest
import redis
import requests

from runner.suite import Suite
from shared.config import load_settings
from shared.signing import new_private_key, parse_private_key
from shared.tokens import SessionTokens, session_codec
from tests.conftest import BACKENDS, unique_email
from tests.e2e.conftest import Browserless, launch_suite

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


def error_of(response: requests.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "retryable"} <= set(body["error"])
    return body["error"]


def session_cookie(client: Browserless) -> str:
    return client.http.cookies["keylm_session"]


def set_cookie_headers(response: requests.Response) -> list[str]:
    return response.raw.headers.getlist("Set-Cookie")


def me_with_cookie(suite: Suite, cookie: str) -> requests.Response:
    """A fresh client replaying a captured cookie value."""
    return requests.get(suite.url("gateway") + "/api/auth/me", cookies={"keylm_session": cookie}, timeout=30)


def login(client: Browserless, address: str, password: str = PASSWORD) -> requests.Response:
    return client.post("/api/auth/login", json={"email": address, "password": password})


# --- outbox and database helpers ------------------------------------------------------------------
def outbox(suite: Suite) -> Path:
    return Path(suite.env["KEYLM_VAR_DIR"]) / "outbox"


def mails_to(suite: Suite, address: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(outbox(suite).glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if mail["To"] == address:
            found.append(mail)
    return found


def reset_tokens_mailed_to(suite: Suite, address: str) -> list[str]:
    link = re.compile(re.escape(suite.env["APP_BASE_URL"]) + r"/reset\?token=(\S+)")
    return [
        unquote(token)
        for mail in mails_to(suite, address)
        for token in link.findall(mail.get_body(("plain",)).get_content())
    ]


def wait_for(check, timeout: float = 10.0):
    """Mail goes out from a background job: poll until `check()` is truthy."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out waiting for the mail job"
        time.sleep(0.05)
    return result


def request_reset_token(suite: Suite, client: Browserless, address: str) -> str:
    before = reset_tokens_mailed_to(suite, address)
    response = client.post("/api/auth/password-reset/request", json={"email": address})
    assert response.status_code == 202, response.text
    new = wait_for(lambda: [t for t in reset_tokens_mailed_to(suite, address) if t not in before])
    assert len(new) == 1
    return new[0]


def expire_reset_tokens(suite: Suite, user_id: str) -> None:
    """Move the user's reset tokens' expiry into the past, in the suite's own database."""
    if "DATABASE_URL" in suite.env:
        with psycopg2.connect(suite.env["DATABASE_URL"]) as connection, connection.cursor() as cursor:
            cursor.execute(
                "UPDATE auth.password_reset_tokens"
                " SET expires_at = now() at time zone 'utc' - interval '1 minute' WHERE user_id = %s",
                (user_id,),
            )
            assert cursor.rowcount >= 1
        connection.close()
    else:
        connection = sqlite3.connect(Path(suite.env["KEYLM_VAR_DIR"]) / "auth.db", timeout=30)
        with connection:
            updated = connection.execute(
                "UPDATE password_reset_tokens SET expires_at = '2000-01-01 00:00:00.000000'"
                " WHERE user_id = ?",
                (user_id,),
            ).rowcount
        connection.close()
        assert updated >= 1


def run_auth_sql(suite: Suite, sql: str, params: tuple) -> list[tuple]:
    """One statement on the suite's auth schema (`auth.` prefix on Postgres, the attached file on SQLite)."""
    if "DATABASE_URL" in suite.env:
        with psycopg2.connect(suite.env["DATABASE_URL"]) as connection, connection.cursor() as cursor:
            cursor.execute(sql.replace("{auth}", "auth.").replace("?", "%s"), params)
            rows = cursor.fetchall() if cursor.description else []
        connection.close()
        return rows
    connection = sqlite3.connect(Path(suite.env["KEYLM_VAR_DIR"]) / "auth.db", timeout=30)
    with connection:
        rows = connection.execute(sql.replace("{auth}", ""), params).fetchall()
    connection.close()
    return rows


def confirm_reset(client: Browserless, token: str, password: str) -> requests.Response:
    return client.post("/api/auth/password-reset/confirm", json={"token": token, "password": password})


# --- sessions -------------------------------------------------------------------------------------
def test_register_then_me_shows_the_new_user(client):
    address = unique_email()

    registered = client.post("/api/auth/register", json={"email": address, "password": PASSWORD})
    me = client.get("/api/auth/me")

    assert registered.status_code == 201
    assert me.status_code == 200
    assert me.json() == registered.json()
    assert me.json()["user"]["email"] == address
    assert set(me.json()["user"]) == {"id", "email", "createdAt", "emailVerified"}


def test_logout_clears_the_cookie_and_ends_the_session(signed_in):
    response = signed_in.post("/api/auth/logout")

    assert response.status_code == 204
    assert response.content == b""
    [cleared] = set_cookie_headers(response)
    assert cleared.startswith("keylm_session=;")
    assert "Max-Age=0" in cleared or "Expires=Thu, 01 Jan 1970" in cleared
    assert signed_in.get("/api/auth/me").status_code == 401


def test_replayed_cookie_is_refused_after_logout(suite, signed_in):
    cookie = session_cookie(signed_in)
    assert me_with_cookie(suite, cookie).status_code == 200

    assert signed_in.post("/api/auth/logout").status_code == 204

    replayed = me_with_cookie(suite, cookie)
    assert replayed.status_code == 401
    assert error_of(replayed)["code"] == "unauthenticated"
    [cleared] = set_cookie_headers(replayed)  # the dead cookie is dropped
    assert cleared.startswith("keylm_session=;")


def test_replayed_cookie_cannot_log_out_again_or_write(suite, signed_in):
    cookie = session_cookie(signed_in)
    signed_in.post("/api/auth/logout")

    replay = requests.post(
        suite.url("gateway") + "/api/auth/logout",
        cookies={"keylm_session": cookie},
        headers={"Origin": signed_in.base},
        timeout=30,
    )

    assert replay.status_code == 401


def test_logout_ends_only_that_session(suite, signed_in):
    other_device = Browserless(suite)
    me = signed_in.get("/api/auth/me").json()["user"]
    assert login(other_device, me["email"]).status_code == 200

    signed_in.post("/api/auth/logout")

    assert other_device.get("/api/auth/me").json()["user"] == me


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "", "a.b.c", ".eJyrVkrLz1eyUkpKLFKqBQApwAU_.forged-signature"],
    ids=["garbage", "empty", "dotted", "forged-signature"],
)
def test_forged_cookie_is_401(suite, cookie):
    response = me_with_cookie(suite, cookie)

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


@pytest.mark.parametrize("signer", ["another key", "the gateway's key", "chat's key"])
def test_cookie_signed_with_another_key_is_401(suite, signed_in, signer):
    """Only auth signs sessions: no other key, a service's own among them, makes a valid cookie."""
    real = session_codec(load_settings(suite.env)).decode(session_cookie(signed_in).strip('"'))
    key = {
        "another key": new_private_key(),
        "the gateway's key": suite.env["GATEWAY_SIGNING_KEY"],
        "chat's key": suite.env["CHAT_SIGNING_KEY"],
    }[signer]
    forged = SessionTokens(parse_private_key(key), []).encode({"uid": real["uid"], "sid": real["sid"]}, 3600)

    assert me_with_cookie(suite, forged).status_code == 401


def test_me_without_a_cookie_is_401(client):
    response = client.get("/api/auth/me")

    assert response.status_code == 401
    assert error_of(response) == {
        "code": "unauthenticated",
        "message": "Sign in to continue.",
        "retryable": False,
    }


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login"])
def test_session_cookie_is_httponly_samesite_lax_path_root(client, path):
    address = unique_email()
    if path.endswith("login"):
        Browserless(client.suite).register(address)

    response = client.post(path, json={"email": address, "password": PASSWORD})

    assert response.ok
    [cookie] = set_cookie_headers(response)
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    flags = {attribute.split("=")[0].lower(): attribute for attribute in attributes}
    assert name_value.startswith("keylm_session=") and len(name_value) > len("keylm_session=") + 20
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=lax"
    assert flags["path"] == "Path=/"
    assert "secure" not in flags  # COOKIE_SECURE=false in the suite
    assert "domain" not in flags
    assert int(flags["max-age"].split("=")[1]) > 0


@pytest.fixture(scope="module", params=BACKENDS)
def secure_suite(request, tmp_path_factory) -> Suite:
    """A suite with COOKIE_SECURE=true (what an https APP_BASE_URL gives by default)."""
    return launch_suite(tmp_path_factory, request, request.param, "secure-cookie", COOKIE_SECURE="true")


def test_secure_cookie_is_host_prefixed_and_works(secure_suite):
    client = Browserless(secure_suite)
    address = unique_email()

    response = client.post("/api/auth/register", json={"email": address, "password": PASSWORD})

    [cookie] = set_cookie_headers(response)
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    flags = {attribute.split("=")[0].lower(): attribute for attribute in attributes}
    assert name_value.startswith("__Host-keylm_session=")
    assert "secure" in flags and flags["path"] == "Path=/" and "domain" not in flags
    token = name_value.split("=", 1)[1]
    me = requests.get(
        secure_suite.url("gateway") + "/api/auth/me", cookies={"__Host-keylm_session": token}, timeout=30
    )
    assert me.status_code == 200
    assert me_with_cookie(secure_suite, token).status_code == 401  # the plain name is not read
    logout = requests.post(
        secure_suite.url("gateway") + "/api/auth/logout",
        cookies={"__Host-keylm_session": token},
        headers={"Origin": secure_suite.url("gateway")},
        timeout=30,
    )
    assert logout.status_code == 204
    assert any(c.startswith("__Host-keylm_session=;") for c in set_cookie_headers(logout))


def test_login_with_wrong_password_and_unknown_email_answer_the_same(client):
    address = client.register()["email"]
    anonymous = Browserless(client.suite)

    wrong_password = login(anonymous, address, "not the password")
    unknown_email = login(anonymous, unique_email(), "not the password")

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.content == unknown_email.content
    assert error_of(wrong_password)["code"] == "invalid_credentials"
    assert set_cookie_headers(wrong_password) == set_cookie_headers(unknown_email) == []


def legacy_password_hash(password: str) -> str:
    """The stored form before PASSWORD_PEPPER: bcrypt over base64(SHA-256(password))."""
    prehash = base64.b64encode(hashlib.sha256(password.encode()).digest())
    return bcrypt.hashpw(prehash, bcrypt.gensalt(rounds=4)).decode()


def test_password_hashes_are_peppered_and_old_ones_upgrade_at_the_next_login(suite, client):
    user = client.register()
    [(fresh,)] = run_auth_sql(suite, "SELECT password_hash FROM {auth}users WHERE id = ?", (user["id"],))
    assert fresh.startswith("hmac-sha256$$2b$")
    run_auth_sql(
        suite,
        "UPDATE {auth}users SET password_hash = ? WHERE id = ?",
        (legacy_password_hash(PASSWORD), user["id"]),
    )

    assert login(Browserless(suite), user["email"], "not the password").status_code == 401
    assert login(Browserless(suite), user["email"]).status_code == 200

    [(upgraded,)] = run_auth_sql(suite, "SELECT password_hash FROM {auth}users WHERE id = ?", (user["id"],))
    assert upgraded.startswith("hmac-sha256$$2b$")
    assert login(Browserless(suite), user["email"]).status_code == 200


def test_login_is_case_insensitive_on_email(client):
    address = unique_email()
    Browserless(client.suite).register(address)

    response = login(client, address.upper())

    assert response.status_code == 200
    assert response.json()["user"]["email"] == address


def test_registering_a_taken_email_in_another_case_is_409(client):
    address = unique_email()
    client.register(address)

    response = Browserless(client.suite).post(
        "/api/auth/register", json={"email": address.upper(), "password": PASSWORD}
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "email_taken"
    assert set_cookie_headers(response) == []


# --- password reset -------------------------------------------------------------------------------
def test_password_reset_via_mailed_link_sets_the_new_password(suite, client):
    user = client.register()
    anonymous = Browserless(suite)

    token = request_reset_token(suite, anonymous, user["email"])
    response = confirm_reset(anonymous, token, "a brand new password")

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert login(anonymous, user["email"], "a brand new password").status_code == 200
    assert login(anonymous, user["email"], PASSWORD).status_code == 401


def test_password_reset_mail_links_to_app_base_url(suite, client):
    user = client.register()

    request_reset_token(suite, client, user["email"])

    [mail] = wait_for(lambda: mails_to(suite, user["email"]))
    body = mail.get_body(("plain",)).get_content()
    assert f"{suite.env['APP_BASE_URL']}/reset?token=" in body
    assert mail["Subject"]


def test_password_reset_ends_every_existing_session(suite, client):
    user = client.register()
    second_device = Browserless(suite)
    assert login(second_device, user["email"]).status_code == 200
    cookies = [session_cookie(client), session_cookie(second_device)]

    token = request_reset_token(suite, Browserless(suite), user["email"])
    assert confirm_reset(Browserless(suite), token, "a brand new password").status_code == 200

    assert client.get("/api/auth/me").status_code == 401
    assert second_device.get("/api/auth/me").status_code == 401
    assert all(me_with_cookie(suite, cookie).status_code == 401 for cookie in cookies)


def test_password_reset_token_is_single_use(suite, client):
    user = client.register()
    token = request_reset_token(suite, client, user["email"])
    assert confirm_reset(client, token, "first new password").status_code == 200

    second = confirm_reset(client, token, "second new password")

    assert second.status_code == 400
    assert error_of(second)["code"] == "invalid_token"
    assert login(Browserless(suite), user["email"], "first new password").status_code == 200


def test_confirming_one_reset_token_spends_every_other_outstanding_one(suite, client):
    user = client.register()
    first = request_reset_token(suite, client, user["email"])
    second = request_reset_token(suite, client, user["email"])
    assert confirm_reset(client, second, "first new password").status_code == 200

    older = confirm_reset(Browserless(suite), first, "attacker password")

    assert older.status_code == 400
    assert error_of(older)["code"] == "invalid_token"
    assert login(Browserless(suite), user["email"], "first new password").status_code == 200
    assert login(Browserless(suite), user["email"], "attacker password").status_code == 401


def test_expired_password_reset_token_is_refused(suite, client):
    user = client.register()
    token = request_reset_token(suite, client, user["email"])
    expire_reset_tokens(suite, user["id"])

    response = confirm_reset(client, token, "a brand new password")

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_token"
    assert login(Browserless(suite), user["email"], PASSWORD).status_code == 200


def test_password_reset_for_unknown_email_sends_nothing_and_answers_the_same(suite, client):
    known = client.register()["email"]
    unknown = unique_email()

    for_unknown = client.post("/api/auth/password-reset/request", json={"email": unknown})
    for_known = client.post("/api/auth/password-reset/request", json={"email": known})

    assert for_unknown.status_code == for_known.status_code == 202
    assert for_unknown.content == for_known.content
    assert len(wait_for(lambda: mails_to(suite, known))) == 1  # queued after the unknown one's job
    assert mails_to(suite, unknown) == []


def test_unknown_reset_token_is_refused(client):
    response = confirm_reset(client, "made-up-token", "a brand new password")

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_token"


# --- login rate limits ----------------------------------------------------------------------------
def assert_rate_limited(response: requests.Response) -> None:
    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "rate_limited"
    assert error["retryable"] is True
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 60


def test_sixth_wrong_login_for_one_email_is_429_with_retry_after(suite, client):
    address = client.register()["email"]
    anonymous = Browserless(suite)
    limit = int(suite.env["LOGIN_LIMIT_PER_EMAIL_PER_MINUTE"])
    assert limit == 5

    answers = [login(anonymous, address, f"wrong password {i}") for i in range(limit)]
    sixth = login(anonymous, address, "wrong password 6")

    assert [r.status_code for r in answers] == [401] * limit
    assert_rate_limited(sixth)
    assert_rate_limited(login(anonymous, address.upper()))  # the right password, any spelling: limited too
    assert login(anonymous, client.register(unique_email())["email"]).status_code == 200  # others unaffected


def test_forwarded_for_is_ignored_without_trusted_proxy_hops(suite, client):
    """TRUSTED_PROXY_HOPS=0 (the default): a client cannot pick a fresh address per attempt."""
    address = client.register()["email"]
    anonymous = Browserless(suite)
    answers = []
    for i in range(6):
        anonymous.http.headers["X-Forwarded-For"] = f"203.0.113.{i}"
        answers.append(login(anonymous, address, f"wrong password {i}"))

    assert [r.status_code for r in answers[:5]] == [401] * 5
    assert_rate_limited(answers[5])


@pytest.fixture(scope="module", params=BACKENDS)
def ip_limited_suite(request, tmp_path_factory) -> Suite:
    """A suite of our own allowing 3 logins per IP per minute (per-email limits left generous)."""
    if request.param == "postgres":
        # The counter lives in Redis across runs: start this test's own key (limit 3) from zero.
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        for key in client.scan_iter("*LIMITER/keylm/127.0.0.1/gateway.login/3/1/minute*"):
            client.delete(key)
    return launch_suite(
        tmp_path_factory,
        request,
        request.param,
        "ip-limited",
        LOGIN_LIMIT_PER_IP_PER_MINUTE="3",
        LOGIN_LIMIT_PER_EMAIL_PER_MINUTE="100",
    )


def test_fourth_login_from_one_ip_is_429_whatever_the_email(ip_limited_suite):
    client = Browserless(ip_limited_suite)

    answers = [login(client, unique_email()) for _ in range(3)]
    fourth = login(client, unique_email())

    assert [r.status_code for r in answers] == [401, 401, 401]
    assert_rate_limited(fourth)
    assert fourth.headers["X-Request-Id"]
    # Registering is limited separately.
    assert (
        client.post("/api/auth/register", json={"email": unique_email(), "password": PASSWORD}).status_code
        == 201
    )


def test_retry_after_appears_only_on_refusals(client):
    """flask-limiter stamps Retry-After on every limited route; the gateway keeps it for 429/503 only."""
    response = client.post("/api/auth/register", json={"email": unique_email(), "password": "long enough pw"})
    assert response.status_code == 201
    assert "Retry-After" not in response.headers
    assert "X-RateLimit-Limit" in response.headers
