"""shared.errors + the factory: every error any service raises is answered with the docs/api.md envelope."""

from __future__ import annotations

import pytest
from flask import Flask, abort, request
from marshmallow import Schema, ValidationError, fields
from werkzeug.exceptions import TooManyRequests

from auth_service.errors import EmailTaken, InvalidCredentials, InvalidResetToken
from shared.app import create_service_app
from shared.errors import (
    APIError,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidJSON,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    ValidationFailed,
)
from shared.internal_auth import InternalAuthFailed
from shared.web import load_json
from tests.conftest import make_settings

ENVELOPE_KEYS = {"code", "message", "retryable"}


class SignupSchema(Schema):
    email = fields.Email(required=True)
    age = fields.Integer(strict=True)


@pytest.fixture
def app(make_app) -> Flask:
    """A public service app with routes that raise each kind of error."""
    app = make_app("errors", MAX_BODY_BYTES="1024")
    leaked = app.extensions["keylm.settings"].auth_secret

    @app.get("/raise/<int:index>")
    def raise_api_error(index: int):
        raise API_ERRORS[index][0]

    @app.route("/only-get", methods=["GET", "HEAD"])
    def only_get():
        return {"ok": True}

    @app.post("/echo-size")
    def echo_size():
        return {"size": len(request.get_data())}

    @app.post("/signup")
    def signup():
        return load_json(SignupSchema())

    @app.post("/schema-error")
    def schema_error():
        raise ValidationError("Not an object.")

    @app.get("/crash")
    def crash():
        raise RuntimeError(f"database password is {leaked}")

    @app.get("/key-error")
    def key_error():
        return {}["missing"]

    @app.get("/abort/<int:status>")
    def abort_with(status: int):
        abort(status)

    @app.get("/too-many")
    def too_many():
        raise TooManyRequests(retry_after=17)

    return app


@pytest.fixture
def client(app):
    return app.test_client()


def error_of(response) -> dict:
    """The `error` object of an envelope response, after checking the envelope's shape."""
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert ENVELOPE_KEYS <= set(error) <= ENVELOPE_KEYS | {"details"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["retryable"], bool)
    return error


API_ERRORS = [
    (APIError(), 500, "internal_error", False),
    (BadRequest(), 400, "bad_request", False),
    (InvalidJSON(), 400, "invalid_json", False),
    (ValidationFailed({"email": ["Not a valid email."]}), 400, "validation_error", False),
    (Unauthenticated(), 401, "unauthenticated", False),
    (InternalAuthFailed(), 401, "unauthenticated", False),
    (InvalidCredentials(), 401, "invalid_credentials", False),
    (Forbidden(), 403, "forbidden", False),
    (NotFound(), 404, "not_found", False),
    (Conflict(), 409, "conflict", False),
    (EmailTaken(), 409, "email_taken", False),
    (InvalidResetToken(), 400, "invalid_token", False),
    (PayloadTooLarge(), 413, "request_too_large", False),
    (RateLimited(), 429, "rate_limited", True),
    (ServiceUnavailable(), 503, "service_unavailable", True),
    (
        APIError("Request in progress.", code="request_in_progress", status=409, retryable=True),
        409,
        "request_in_progress",
        True,
    ),
]


@pytest.mark.parametrize(
    ("index", "status", "code", "retryable"),
    [(i, status, code, retryable) for i, (_, status, code, retryable) in enumerate(API_ERRORS)],
    ids=[type(error).__name__ + ":" + code for error, _, code, _ in API_ERRORS],
)
def test_api_error_is_answered_with_its_status_and_code(client, index, status, code, retryable):
    response = client.get(f"/raise/{index}")

    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    assert error["retryable"] is retryable
    assert error["message"] == API_ERRORS[index][0].message


def test_api_error_details_and_headers_reach_the_client(app, client):
    @app.get("/quota")
    def quota():
        raise APIError(
            "Daily free requests used up.",
            code="free_quota_exhausted",
            status=429,
            retryable=True,
            details={"resetsAt": "2026-11-28T00:00:00Z"},
            headers={"Retry-After": "3600"},
        )

    response = client.get("/quota")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3600"
    assert error_of(response) == {
        "code": "free_quota_exhausted",
        "message": "Daily free requests used up.",
        "retryable": True,
        "details": {"resetsAt": "2026-11-28T00:00:00Z"},
    }


def test_validation_failed_details_hold_the_fields(client):
    index = next(i for i, entry in enumerate(API_ERRORS) if isinstance(entry[0], ValidationFailed))

    error = error_of(client.get(f"/raise/{index}"))

    assert error["details"] == {"fields": {"email": ["Not a valid email."]}}


def test_unknown_path_is_404_not_found_in_the_envelope(client):
    response = client.get("/no/such/path")

    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "Not found.", "retryable": False}


def test_wrong_method_is_405_with_allow_header(client):
    response = client.delete("/only-get")

    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert {"GET", "HEAD"} <= allowed
    assert "DELETE" not in allowed


def test_body_over_max_body_bytes_is_413_request_too_large(client):
    response = client.post("/echo-size", data=b"x" * 2048)

    assert response.status_code == 413
    assert error_of(response) == {
        "code": "request_too_large",
        "message": "The request body is too large.",
        "retryable": False,
    }


def test_body_within_max_body_bytes_is_accepted(client):
    response = client.post("/echo-size", data=b"x" * 1024)

    assert response.status_code == 200
    assert response.get_json() == {"size": 1024}


def test_marshmallow_validation_error_is_validation_error_with_fields(client):
    response = client.post("/signup", json={"email": "not-an-email", "age": "7", "admin": True})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["retryable"] is False
    fields_ = error["details"]["fields"]
    assert set(fields_) == {"email", "age", "admin"}
    assert all(isinstance(messages, list) and messages for messages in fields_.values())


def test_missing_required_field_is_named_in_details(client):
    error = error_of(client.post("/signup", json={}))

    assert error["code"] == "validation_error"
    assert error["details"]["fields"] == {"email": ["Missing data for required field."]}


def test_schema_level_validation_error_is_under_schema_key(client):
    error = error_of(client.post("/schema-error"))

    assert error["code"] == "validation_error"
    assert error["details"]["fields"] == {"_schema": ["Not an object."]}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b'{"email": ', "application/json", id="malformed"),
        pytest.param(b'["a@example.com"]', "application/json", id="array"),
        pytest.param(b'"a@example.com"', "application/json", id="string"),
        pytest.param(b"42", "application/json", id="number"),
        pytest.param(b"null", "application/json", id="null"),
        pytest.param(b"\xff\xfe{}", "application/json", id="not-utf8"),
        pytest.param(b'{"email": "a@example.com"}', "text/plain", id="wrong-content-type"),
        pytest.param(b"email=a%40example.com", "application/x-www-form-urlencoded", id="form"),
    ],
)
def test_body_that_is_not_a_json_object_is_invalid_json(client, body, content_type):
    response = client.post("/signup", data=body, content_type=content_type)

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_unhandled_exception_is_500_internal_error_without_traceback_or_secret(app, client):
    secret = app.extensions["keylm.settings"].auth_secret

    response = client.get("/crash")

    assert response.status_code == 500
    assert error_of(response) == {
        "code": "internal_error",
        "message": "Something went wrong on our side.",
        "retryable": True,
    }
    text = response.get_data(as_text=True)
    for leak in (secret, "Traceback", "RuntimeError", "database password", "crash", ".py"):
        assert leak not in text


def test_unhandled_builtin_error_is_500_internal_error(client):
    response = client.get("/key-error")

    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    assert "missing" not in response.get_data(as_text=True)


def test_unhandled_exception_is_logged_with_its_traceback_and_request_id(app, client, json_log):
    log = json_log("errors", secrets=[app.extensions["keylm.settings"].auth_secret])

    response = client.get("/crash", headers={"X-Request-Id": "crash-123"})

    assert response.headers["X-Request-Id"] == "crash-123"
    [record] = [r for r in log.records if r["message"] == "unhandled error"]
    assert record["level"] == "ERROR"
    assert record["request_id"] == "crash-123"
    assert "RuntimeError: database password is [REDACTED]" in record["exc_info"]
    assert app.extensions["keylm.settings"].auth_secret not in log.text


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "bad_request"), (401, "unauthenticated"), (403, "forbidden"), (404, "not_found")],
)
def test_werkzeug_abort_is_mapped_to_the_envelope(client, status, code):
    response = client.get(f"/abort/{status}")

    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_werkzeug_429_is_rate_limited_with_retry_after(client):
    response = client.get("/too-many")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "17"
    assert error_of(response) == {
        "code": "rate_limited",
        "message": "Too many requests; slow down.",
        "retryable": True,
    }


def test_error_responses_carry_a_request_id(client):
    response = client.get("/no/such/path")

    assert response.headers["X-Request-Id"]


def test_service_app_refuses_a_call_without_internal_credential(tmp_path):
    app = create_service_app("keys", make_settings(tmp_path / "var"))

    response = app.test_client().get("/anything")

    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"
    assert app.test_client().get("/healthz").status_code == 200
