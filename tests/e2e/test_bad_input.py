"""Hostile and malformed input through the gateway: always the documented 4xx in the envelope, never a 500."""

from __future__ import annotations

import json

import pytest
import requests

from runner.suite import Suite
from tests.conftest import BACKENDS, unique_email
from tests.e2e.conftest import Browserless, launch_suite

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
ENDPOINTS = ("register", "login", "reset-request", "reset-confirm")
PATHS = {
    "register": "/api/auth/register",
    "login": "/api/auth/login",
    "reset-request": "/api/auth/password-reset/request",
    "reset-confirm": "/api/auth/password-reset/confirm",
}
REQUIRED = {
    "register": ("email", "password"),
    "login": ("email", "password"),
    "reset-request": ("email",),
    "reset-confirm": ("token", "password"),
}


@pytest.fixture(scope="module", params=BACKENDS)
def suite(request, tmp_path_factory) -> Suite:
    """Overrides the shared suite for this module: every body without a readable email shares one
    login-per-email bucket, so the default 5/minute would turn these cases into 429s."""
    return launch_suite(
        tmp_path_factory, request, request.param, "bad-input", LOGIN_LIMIT_PER_EMAIL_PER_MINUTE="1000"
    )


def valid_body(endpoint: str) -> dict:
    return {
        "register": {"email": unique_email(), "password": PASSWORD},
        "login": {"email": unique_email(), "password": PASSWORD},
        "reset-request": {"email": unique_email()},
        "reset-confirm": {"token": "some-token-value", "password": PASSWORD},
    }[endpoint]


def send(
    client: Browserless, endpoint: str, body: bytes | str, content_type: str | None = "application/json"
):
    headers = {"Content-Type": content_type} if content_type else {}
    data = body.encode("utf-8") if isinstance(body, str) else body
    return client.post(PATHS[endpoint], data=data, headers=headers)


def send_json(client: Browserless, endpoint: str, body) -> requests.Response:
    return send(client, endpoint, json.dumps(body))


def error_of(response: requests.Response, status: int) -> dict:
    """Check the status and the envelope's shape; return the error object."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) <= {"code", "message", "retryable", "details"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["retryable"] is False
    assert "Traceback" not in response.text
    return error


# --- bodies that are not a JSON object: 400 invalid_json everywhere -------------------------------
NOT_AN_OBJECT = {
    "malformed": (b'{"email": "a@example.com", "password": ', "application/json"),
    "trailing-garbage": (b'{"email": "a@example.com"} extra', "application/json"),
    "single-quotes": (b"{'email': 'a@example.com'}", "application/json"),
    "array": (b'[{"email": "a@example.com", "password": "correct horse battery"}]', "application/json"),
    "empty-array": (b"[]", "application/json"),
    "string": (b'"a@example.com"', "application/json"),
    "number": (b"42", "application/json"),
    "null": (b"null", "application/json"),
    "true": (b"true", "application/json"),
    "deeply-nested": (b"[" * 100_000, "application/json"),
    "deeply-nested-object": (b'{"email":' * 50_000, "application/json"),
    "not-utf8": (b'{"email": "\xff\xfe@example.com", "password": "abcdefghij"}', "application/json"),
    "lone-surrogate": (b'{"email": "a@example.com", "password": "\\ud800abcdefghij"}', "application/json"),
    "nul-in-email": (b'{"email": "a\\u0000@example.com", "password": "abcdefghij"}', "application/json"),
    "wrong-content-type": (b'{"email": "a@example.com", "password": "abcdefghij"}', "text/plain"),
    "form-encoded": (b"email=a%40example.com&password=abcdefghij", "application/x-www-form-urlencoded"),
    "no-content-type": (b'{"email": "a@example.com", "password": "abcdefghij"}', None),
    "xml": (b"<login><email>a@example.com</email></login>", "application/xml"),
}


@pytest.mark.parametrize(("body", "content_type"), list(NOT_AN_OBJECT.values()), ids=list(NOT_AN_OBJECT))
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_that_is_not_a_json_object_is_400_invalid_json(client, endpoint, body, content_type):
    response = send(client, endpoint, body, content_type)

    assert error_of(response, 400)["code"] == "invalid_json"


# --- wrong shapes inside the object: 400 validation_error naming the field -------------------------
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("body", [b"", b"{}"], ids=["empty-body", "empty-object"])
def test_empty_body_is_validation_error_naming_every_required_field(client, endpoint, body):
    error = error_of(send(client, endpoint, body), 400)

    assert error["code"] == "validation_error"
    assert error["details"]["fields"] == {
        name: ["Missing data for required field."] for name in REQUIRED[endpoint]
    }


@pytest.mark.parametrize(
    ("endpoint", "field"), [(endpoint, field) for endpoint in ENDPOINTS for field in REQUIRED[endpoint]]
)
def test_missing_field_is_validation_error_naming_it(client, endpoint, field):
    body = valid_body(endpoint)
    del body[field]

    error = error_of(send_json(client, endpoint, body), 400)

    assert error["code"] == "validation_error"
    assert error["details"]["fields"] == {field: ["Missing data for required field."]}


@pytest.mark.parametrize("value", [5, None, True, [], {}, ["a@example.com"], 1.5], ids=repr)
@pytest.mark.parametrize(
    ("endpoint", "field"), [(endpoint, field) for endpoint in ENDPOINTS for field in REQUIRED[endpoint]]
)
def test_wrong_type_is_validation_error_naming_the_field(client, endpoint, field, value):
    body = {**valid_body(endpoint), field: value}

    error = error_of(send_json(client, endpoint, body), 400)

    assert error["code"] == "validation_error"
    assert list(error["details"]["fields"]) == [field]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("extra", ["isAdmin", "userId", "id", "passwordHash"])
def test_unknown_field_is_validation_error_naming_it(client, endpoint, extra):
    body = {**valid_body(endpoint), extra: "u-123"}

    error = error_of(send_json(client, endpoint, body), 400)

    assert error["code"] == "validation_error"
    assert list(error["details"]["fields"]) == [extra]


@pytest.mark.parametrize("endpoint", ["register", "login", "reset-request"])
def test_email_over_320_characters_is_validation_error(client, endpoint):
    body = {**valid_body(endpoint), "email": "a" * 310 + "@example.com"}

    error = error_of(send_json(client, endpoint, body), 400)

    assert error["code"] == "validation_error"
    assert list(error["details"]["fields"]) == ["email"]


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com", " "])
def test_register_with_an_invalid_email_is_validation_error(client, email):
    error = error_of(send_json(client, "register", {"email": email, "password": PASSWORD}), 400)

    assert error["code"] == "validation_error"
    assert list(error["details"]["fields"]) == ["email"]


def test_login_with_an_invalid_email_is_just_invalid_credentials(client):
    error = error_of(send_json(client, "login", {"email": "not-an-email", "password": PASSWORD}), 401)

    assert error["code"] == "invalid_credentials"


def test_reset_request_with_an_invalid_email_says_nothing_either(client):
    response = send_json(client, "reset-request", {"email": "not-an-email"})

    assert response.status_code == 202
    assert response.json() == {"ok": True}


# --- password length ------------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["register", "reset-confirm"])
@pytest.mark.parametrize("length", [0, 7, 129, 1000])
def test_password_outside_8_to_128_characters_is_validation_error(client, endpoint, length):
    body = {**valid_body(endpoint), "password": "p" * length}

    error = error_of(send_json(client, endpoint, body), 400)

    assert error["code"] == "validation_error"
    assert list(error["details"]["fields"]) == ["password"]


def test_login_with_a_129_character_password_is_invalid_credentials(client):
    address = client.register()["email"]

    error = error_of(send_json(client, "login", {"email": address, "password": "p" * 129}), 401)

    assert error["code"] == "invalid_credentials"


def test_reset_confirm_with_an_over_long_token_is_validation_error(client):
    error = error_of(send_json(client, "reset-confirm", {"token": "t" * 257, "password": PASSWORD}), 400)

    assert list(error["details"]["fields"]) == ["token"]


def test_reset_confirm_with_an_unknown_token_is_invalid_token(client):
    error = error_of(send_json(client, "reset-confirm", {"token": "t" * 256, "password": PASSWORD}), 400)

    assert error["code"] == "invalid_token"


# --- non-ASCII and long secrets are accepted ------------------------------------------------------
def test_non_ascii_email_registers_and_logs_in_case_insensitively(client):
    address = f"jürgen-{unique_email().split('@')[0]}@exämple.de"

    registered = send_json(client, "register", {"email": address, "password": PASSWORD})

    assert registered.status_code == 201, registered.text
    assert registered.json()["user"]["email"] == address
    anonymous = Browserless(client.suite)
    response = send_json(anonymous, "login", {"email": address.upper(), "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["user"]["email"] == address


def test_exact_jurgen_example_address_is_accepted(suite):
    client = Browserless(suite)

    response = send_json(client, "register", {"email": "jürgen@exämple.de", "password": PASSWORD})

    # One suite per backend and module: this exact address is registered once per database.
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "password",
    [
        "pässwörd-ÄÖÜ",
        "пароль-секрет",
        "密码密码密码密码",
        "🙂🙃🙂🙃🙂🙃🙂🙃",
        "tab\tand\nnewline",
        "' OR 1=1 --",
    ],
    ids=["umlauts", "cyrillic", "cjk", "emoji", "control-chars", "sql-ish"],
)
def test_non_ascii_and_odd_passwords_register_and_log_in(client, password):
    address = unique_email()

    assert send_json(client, "register", {"email": address, "password": password}).status_code == 201

    anonymous = Browserless(client.suite)
    assert send_json(anonymous, "login", {"email": address, "password": password}).status_code == 200


LONG_PASSWORDS = {
    "80-ascii": ("L" * 72 + "-suffix1", "L" * 72 + "-suffix2"),
    "100-multibyte": ("ß" * 100, "ß" * 36 + "s" * 64),
    "128-emoji-bytes": ("🔑" * 32, "🔑" * 18 + "k" * 14),
}


@pytest.mark.parametrize(("password", "twin"), list(LONG_PASSWORDS.values()), ids=list(LONG_PASSWORDS))
def test_password_over_72_bytes_registers_and_its_prefix_twin_is_refused(client, password, twin):
    assert len(password.encode()) > 72 and password.encode()[:72] == twin.encode()[:72]
    address = unique_email()

    assert send_json(client, "register", {"email": address, "password": password}).status_code == 201

    anonymous = Browserless(client.suite)
    assert send_json(anonymous, "login", {"email": address, "password": password}).status_code == 200
    error = error_of(send_json(anonymous, "login", {"email": address, "password": twin}), 401)
    assert error["code"] == "invalid_credentials"


# --- the services survive all of the above --------------------------------------------------------
def test_suite_is_healthy_after_the_bad_input(client):
    assert client.get("/api/healthz").status_code == 200
    assert client.register()["email"]
