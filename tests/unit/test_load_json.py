"""shared.web.load_json and gateway.limits.email_in_body: hostile bodies are a 400, never a 500."""

from __future__ import annotations

import json

import pytest
from marshmallow import Schema, fields

from gateway.limits import email_in_body
from shared.web import load_json

DEEP_ARRAY = "[" * 100_000
DEEP_OBJECT = '{"a":' * 50_000


class LoginLike(Schema):
    email = fields.String(required=True)
    password = fields.String(required=True)


@pytest.fixture
def app(make_app):
    app = make_app("loader")

    @app.post("/load")
    def load():
        return load_json(LoginLike())

    return app


@pytest.fixture
def client(app):
    return app.test_client()


def post_raw(client, body: str | bytes):
    return client.post("/load", data=body, content_type="application/json")


def test_json_object_is_loaded_through_the_schema(client):
    response = client.post("/load", json={"email": "a@example.com", "password": "pässwörd 日本"})

    assert response.status_code == 200
    assert response.get_json() == {"email": "a@example.com", "password": "pässwörd 日本"}


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["deep-array", "deep-object"])
def test_absurdly_nested_json_is_invalid_json_not_a_crash(client, body):
    response = post_raw(client, body)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


# JSON escapes a parser accepts but no database or UTF-8 encoder can take.
UNSTORABLE = {
    "lone-high-surrogate-in-value": r'{"email": "a@example.com", "password": "\ud800abcdefgh"}',
    "lone-low-surrogate-in-value": r'{"email": "\udc00@example.com", "password": "abcdefgh"}',
    "lone-surrogate-in-key": r'{"email": "a@example.com", "password": "abcdefgh", "\ud83d": 1}',
    "lone-surrogate-nested": r'{"email": "a@example.com", "password": "abcdefgh", "x": [{"y": "\udfff"}]}',
    "nul-in-value": r'{"email": "a\u0000@example.com", "password": "abcdefgh"}',
    "nul-in-key": r'{"email": "a@example.com", "password": "abcdefgh", "\u0000": 1}',
}


@pytest.mark.parametrize("body", list(UNSTORABLE.values()), ids=list(UNSTORABLE))
def test_unstorable_text_is_invalid_json_not_a_crash(client, body):
    response = post_raw(client, body)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_paired_surrogate_escape_is_an_ordinary_character(client):
    response = post_raw(client, r'{"email": "a@example.com", "password": "emoji \ud83d\ude00 ok"}')

    assert response.status_code == 200
    assert response.get_json()["password"] == "emoji 😀 ok"


def test_empty_body_loads_as_an_empty_object(client):
    response = client.post("/load")

    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["fields"] == {
        "email": ["Missing data for required field."],
        "password": ["Missing data for required field."],
    }


def limit_key_for(app, body) -> str:
    with app.test_request_context("/api/auth/login", method="POST", json=body):
        return email_in_body()


@pytest.mark.parametrize(
    ("body", "same_as"),
    [
        ({"email": " Alice@Example.COM ", "password": "x"}, {"email": "alice@example.com"}),
        ({"email": 5}, {}),
        ({"password": "x"}, {}),
        (["alice@example.com"], {}),
        ("alice@example.com", {}),
    ],
)
def test_login_limit_key_is_the_normalized_email_hashed(app, body, same_as):
    """One key per normalized email (or one for "no email"); the email itself is never in it, so
    neither Redis nor flask-limiter's log lines hold it (issue 10: was the plain email)."""
    key = limit_key_for(app, body)

    assert key == limit_key_for(app, same_as)
    assert key.startswith("email:") and "alice" not in key.lower() and "example" not in key.lower()
    assert key != limit_key_for(app, {"email": "bob@example.com"})


@pytest.mark.parametrize(
    "body",
    [DEEP_ARRAY, DEEP_OBJECT, "{not json", b"\xff\xfe", ""],
    ids=["deep-array", "deep-object", "malformed", "not-utf8", "empty"],
)
def test_login_limit_key_survives_hostile_bodies(app, body):
    with app.test_request_context(
        "/api/auth/login", method="POST", data=body, content_type="application/json"
    ):
        assert email_in_body() == limit_key_for(app, {})


def test_deep_array_body_really_exceeds_the_json_parsers_recursion_limit():
    with pytest.raises(RecursionError):
        json.loads(DEEP_ARRAY)
