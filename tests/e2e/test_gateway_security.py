"""The gateway as the only door: CSRF, internal credentials, identity headers, security headers, ids."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from runner.suite import Suite
from shared.config import load_settings
from shared.internal_auth import HEADER, InternalCredentials
from shared.signing import new_private_key, parse_private_key
from shared.tokens import session_codec
from tests.e2e.conftest import Browserless

pytestmark = pytest.mark.e2e

FOREIGN_ORIGIN = "https://evil.example"
TEN_MB = 10 * 1024 * 1024


def error_of(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "retryable"} <= set(body["error"])
    return body["error"]


def assert_still_signed_in(client: Browserless) -> None:
    assert client.get("/api/auth/me").status_code == 200


# --- CSRF ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": FOREIGN_ORIGIN}, id="foreign-origin"),
        pytest.param({"Origin": "null"}, id="null-origin"),
        pytest.param({"Origin": None}, id="neither-origin-nor-referer"),
        pytest.param({"Origin": None, "Referer": FOREIGN_ORIGIN + "/page"}, id="foreign-referer"),
        pytest.param({"Origin": FOREIGN_ORIGIN, "Referer": "{base}/"}, id="foreign-origin-own-referer"),
        pytest.param({"Origin": "{other_port}"}, id="same-host-other-port"),
        pytest.param({"Origin": "{https}"}, id="same-host-https"),
        pytest.param({"Origin": "{base}.evil.example"}, id="own-origin-as-prefix"),
    ],
)
def test_cookie_authenticated_post_from_elsewhere_is_403_csrf_failed(signed_in, headers):
    base = signed_in.base
    scheme, host, port = re.match(r"(https?)://([^:]+):(\d+)", base).groups()
    values = {
        "base": base,
        "other_port": f"{scheme}://{host}:{int(port) + 1}",
        "https": f"https://{host}:{port}",
    }
    headers = {name: value.format(**values) if value else value for name, value in headers.items()}

    response = signed_in.post("/api/auth/logout", headers=headers)

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "csrf_failed"
    assert error["retryable"] is False
    assert_still_signed_in(signed_in)  # the logout did not happen


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_every_state_changing_method_is_csrf_checked(signed_in, method):
    response = signed_in.request(method, "/api/threads/some-thread", headers={"Origin": FOREIGN_ORIGIN})

    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf_failed"


def test_matching_referer_without_origin_passes(signed_in):
    response = signed_in.post(
        "/api/auth/logout", headers={"Origin": None, "Referer": signed_in.base + "/chat"}
    )

    assert response.status_code == 204
    assert signed_in.get("/api/auth/me").status_code == 401


def test_matching_origin_passes(signed_in):
    assert signed_in.post("/api/auth/logout").status_code == 204


def test_localhost_origin_passes_when_the_base_url_is_127_0_0_1(signed_in):
    """What a browser sends when the user typed http://localhost:<port> (docker's port mapping)."""
    assert signed_in.base.startswith("http://127.0.0.1:")
    localhost = signed_in.base.replace("127.0.0.1", "localhost")

    assert signed_in.post("/api/auth/logout", headers={"Origin": localhost}).status_code == 204


def test_cookie_authenticated_get_from_elsewhere_is_not_refused(signed_in):
    assert signed_in.get("/api/auth/me", headers={"Origin": FOREIGN_ORIGIN}).status_code == 200


def test_post_without_session_cookie_is_not_csrf_checked(client):
    response = client.post(
        "/api/auth/login",
        json={"email": "nobody@example.com", "password": "whatever-pass"},
        headers={"Origin": FOREIGN_ORIGIN},
    )

    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_credentials"


# --- services are reachable only with the internal credential ---------------------------------
SERVICE_PATHS = {
    "auth": "/api/auth/me",
    "keys": "/api/providers/openai/keys",
    "chat": "/api/threads",
    "quota": "/api/usage/free",
}


def forged(suite: Suite, service: str, kind: str, user_id: str = "some-user") -> str:
    """A bad credential for `GET SERVICE_PATHS[service]` on `service`."""
    gateway_key = parse_private_key(suite.env["GATEWAY_SIGNING_KEY"])
    path = SERVICE_PATHS[service]
    if kind == "garbage":
        return "garbage-credential"
    if kind == "other-secret":
        other_key = parse_private_key(new_private_key())
        return InternalCredentials("gateway", other_key).issue(service, "GET", path, b"", user_id, "s")
    if kind == "other-audience":
        other = "keys" if service != "keys" else "auth"
        return InternalCredentials("gateway", gateway_key).issue(other, "GET", path, b"", user_id, "s")
    if kind == "expired":
        stale = InternalCredentials("gateway", gateway_key, clock=lambda: time.time() - 3600)
        return stale.issue(service, "GET", path, b"", user_id)
    raise AssertionError(kind)


@pytest.mark.parametrize("service", list(SERVICE_PATHS))
def test_service_port_without_internal_credential_is_401(suite, service):
    response = requests.get(suite.url(service) + SERVICE_PATHS[service], timeout=10)

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


@pytest.mark.parametrize("kind", ["garbage", "other-secret", "other-audience", "expired"])
@pytest.mark.parametrize("service", list(SERVICE_PATHS))
def test_service_port_with_forged_internal_credential_is_401(suite, service, kind):
    response = requests.get(
        suite.url(service) + SERVICE_PATHS[service],
        headers={HEADER: forged(suite, service, kind)},
        timeout=10,
    )

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


def test_register_straight_to_auth_port_is_refused_and_creates_nothing(suite, client):
    email = f"direct-{time.time_ns()}@example.com"
    body = {"email": email, "password": "correct horse battery"}

    direct = requests.post(suite.url("auth") + "/api/auth/register", json=body, timeout=10)

    assert direct.status_code == 401
    assert client.post("/api/auth/register", json=body).status_code == 201


# --- identity comes from the cookie only --------------------------------------------------------
@pytest.fixture
def other_user(suite) -> dict:
    return Browserless(suite).register()


def spoofing_headers(suite: Suite, victim_id: str) -> dict[str, dict[str, str]]:
    gateway = InternalCredentials("gateway", parse_private_key(suite.env["GATEWAY_SIGNING_KEY"]))
    real_credential = gateway.issue("auth", "GET", "/api/auth/me", b"", victim_id, "victim-session")
    return {
        "x-user-id": {"X-User-Id": victim_id},
        "x-forwarded-user": {"X-Forwarded-User": victim_id},
        "garbage-internal": {HEADER: "garbage"},
        "validly-signed-internal": {HEADER: real_credential},
        "all-at-once": {
            "X-User-Id": victim_id,
            "X-Forwarded-User": victim_id,
            "X-Remote-User": victim_id,
            HEADER: real_credential,
        },
    }


@pytest.mark.parametrize(
    "kind", ["x-user-id", "x-forwarded-user", "garbage-internal", "validly-signed-internal", "all-at-once"]
)
def test_client_sent_identity_headers_are_ignored(suite, signed_in, other_user, kind):
    me = signed_in.get("/api/auth/me").json()["user"]

    response = signed_in.get("/api/auth/me", headers=spoofing_headers(suite, other_user["id"])[kind])

    assert response.status_code == 200
    assert response.json()["user"] == me


@pytest.mark.parametrize(
    "kind", ["x-user-id", "x-forwarded-user", "garbage-internal", "validly-signed-internal", "all-at-once"]
)
def test_identity_headers_without_a_cookie_are_401(suite, client, other_user, kind):
    response = client.get("/api/auth/me", headers=spoofing_headers(suite, other_user["id"])[kind])

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


def test_internal_session_headers_never_reach_the_client(client):
    registered = client.post(
        "/api/auth/register",
        json={"email": f"h-{time.time_ns()}@example.com", "password": "correct horse battery"},
    )
    logged_out = client.post("/api/auth/logout")

    for response in (registered, logged_out):
        assert not any(name.lower().startswith("x-keylm") for name in response.headers)


@pytest.mark.parametrize(
    "prefix", ["/api/auth/", "/api/providers/openai/keys/", "/api/threads/", "/api/usage/"]
)
@pytest.mark.parametrize("dots", ["..%2f", "%2e%2e/", "%2E%2E%2F", "..%2F"])
def test_encoded_dot_segments_cannot_reach_internal_routes(suite, signed_in, other_user, prefix, dots):
    victim = Browserless(suite)
    victim.post("/api/auth/login", json={"email": other_user["email"], "password": other_user["password"]})
    victim_cookie = victim.http.cookies["keylm_session"].strip('"')
    victim_session = session_codec(load_settings(suite.env)).decode(victim_cookie)["sid"]

    response = signed_in.get(prefix + dots * 6 + f"internal/sessions/{victim_session}")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert other_user["id"] not in response.text


# --- headers on every response ------------------------------------------------------------------
PAGES = [
    ("GET", "/"),
    ("GET", "/reset"),
    ("GET", "/api/healthz"),
    ("GET", "/api/auth/me"),
    ("POST", "/api/auth/login"),
    ("GET", "/api/auth/login"),
    ("GET", "/api/no-such-route"),
    ("GET", "/api/threads"),
]


def assert_security_headers(response: requests.Response) -> None:
    headers = response.headers
    assert headers["X-Request-Id"]
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp or headers["X-Frame-Options"] == "DENY"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in ("same-origin", "strict-origin-when-cross-origin", "no-referrer")


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_every_response_carries_request_id_and_security_headers(client, method, path):
    response = client.request(method, path, json={} if method == "POST" else None)

    assert_security_headers(response)


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/auth/me"), ("POST", "/api/auth/logout")])
def test_signed_in_api_responses_carry_security_headers(signed_in, method, path):
    assert_security_headers(signed_in.request(method, path))


def test_csrf_refusal_carries_security_headers(signed_in):
    assert_security_headers(signed_in.post("/api/auth/logout", headers={"Origin": FOREIGN_ORIGIN}))


def test_no_session_cookie_is_set_on_anonymous_pages(client):
    assert "Set-Cookie" not in client.get("/").headers


# --- request ids --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/api/healthz", "/api/auth/me"])
def test_sane_request_id_is_echoed(client, path):
    request_id = f"e2e-{time.time_ns()}"

    assert client.get(path, headers={"X-Request-Id": request_id}).headers["X-Request-Id"] == request_id


@pytest.mark.parametrize(
    "insane", ["r" * 129, "has spaces in it", "<script>alert(1)</script>", "a;b", "ünïcode", "%0d%0aX-Evil:1"]
)
@pytest.mark.parametrize("path", ["/", "/api/auth/me"])
def test_insane_request_id_is_replaced(client, path, insane):
    response = client.get(path, headers={"X-Request-Id": insane.encode("utf-8")})

    assert response.headers["X-Request-Id"] != insane
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    assert "X-Evil" not in response.headers


def log_lines_with(suite: Suite, service: str, request_id: str, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [
            json.loads(line)
            for line in suite.log_path(service).read_text(errors="replace").splitlines()
            if request_id in line and line.startswith("{")
        ]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_request_id_follows_the_request_into_the_service_logs(suite, signed_in):
    request_id = f"follow-{time.time_ns()}"

    signed_in.get("/api/auth/me", headers={"X-Request-Id": request_id})

    gateway_lines = log_lines_with(suite, "gateway", request_id)
    auth_lines = log_lines_with(suite, "auth", request_id)
    assert any(line.get("path") == "/api/auth/me" for line in gateway_lines)
    assert any(line.get("path") == "/api/auth/me" for line in auth_lines)
    assert any(line.get("path", "").startswith("/internal/sessions/") for line in auth_lines)


def test_session_cookie_never_reaches_a_log(suite, signed_in):
    cookie = signed_in.http.cookies["keylm_session"].strip('"')
    signed_in.get("/api/auth/me", headers={"X-Request-Id": f"cookie-{time.time_ns()}"})

    for service in ("gateway", "auth"):
        assert cookie not in suite.log_path(service).read_text(errors="replace")


# --- body size ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/password-reset/request",
        "/api/auth/password-reset/confirm",
    ],
)
def test_ten_megabyte_body_is_413_request_too_large(client, path):
    response = client.post(
        path, data=b"{" + b" " * TEN_MB + b"}", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert error_of(response) == {
        "code": "request_too_large",
        "message": "The request body is too large.",
        "retryable": False,
    }
    assert_security_headers(response)


def chunks_of(total: int, size: int = 64 * 1024):
    """A body sent with Transfer-Encoding: chunked (no Content-Length)."""
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/threads"])
def test_chunked_body_over_the_limit_is_413_like_a_declared_one(signed_in, path):
    response = signed_in.post(
        path, data=chunks_of(2 * 1024 * 1024), headers={"Content-Type": "application/json"}
    )

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413
    assert error_of(response) == {
        "code": "request_too_large",
        "message": "The request body is too large.",
        "retryable": False,
    }


def test_chunked_body_under_the_limit_is_read_whole(client):
    body = json.dumps({"email": f"chunked-{time.time_ns()}@example.com", "password": "long enough pw"})
    pieces = iter([body[:10].encode(), body[10:].encode()])

    response = client.post("/api/auth/register", data=pieces, headers={"Content-Type": "application/json"})

    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 201, response.text


def test_ten_megabyte_body_from_a_signed_in_user_is_413(signed_in):
    response = signed_in.post(
        "/api/threads", data=b"x" * TEN_MB, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"
    assert_still_signed_in(signed_in)


def test_api_answers_are_not_cached(signed_in):
    assert signed_in.get("/api/auth/me").headers["Cache-Control"] == "no-store"
    assert signed_in.get("/api/threads").headers["Cache-Control"] == "no-store"
