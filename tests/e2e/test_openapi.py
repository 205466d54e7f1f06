"""The OpenAPI document against the running suite, and regression tests for what fuzzing found.

- `GET /api/openapi.json` serves the committed docs/openapi.json to anyone, and it is valid OpenAPI 3.1
  (tests/unit/test_openapi_spec.py checks that file is what the code builds);
- a walk through every operation's happy path answers exactly what the document says (bodies,
  statuses, headers, each event of a message stream);
- the bugs tests/e2e/test_fuzz.py found stay fixed (each test names its fix).
"""

from __future__ import annotations

import base64
import json
import re
import uuid

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_openapi

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import Browserless
from tests.e2e.sse import read_events, send

pytestmark = pytest.mark.e2e

SPEC = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))


def _validator(schema: dict) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": SPEC["components"]}, format_checker=FormatChecker())


def _match_path(path: str) -> str:
    """The document's path template a concrete /api path belongs to."""
    for template in SPEC["paths"]:
        pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    raise AssertionError(f"{path} is not in the OpenAPI document")


def assert_conforms(response: requests.Response) -> None:
    """The response is one the document allows for its operation: status, headers, content."""
    request = response.request
    path = request.path_url.split("?", 1)[0]
    operation = SPEC["paths"][_match_path(path)][request.method.lower()]
    status = str(response.status_code)
    documented = operation["responses"].get(status) or operation["responses"].get(status[0] + "XX")
    assert documented, f"{request.method} {path} answered an undocumented {status}: {response.text[:300]}"
    assert response.headers.get("X-Request-Id")
    content = documented.get("content")
    if content is None:
        assert not response.content, response.text
        return
    media_type = response.headers["Content-Type"].split(";")[0]
    assert media_type in content, f"{media_type} not in {list(content)}"
    if media_type == "application/json":
        errors = list(_validator(content[media_type]["schema"]).iter_errors(response.json()))
        assert not errors, f"{request.method} {path} {status}: {[e.message for e in errors]}"


def assert_stream_conforms(response: requests.Response) -> list:
    """Each event of a message stream matches its documented data schema, in docs/api.md's order."""
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers.get("X-Request-Id")
    events = read_events(response)
    operation = SPEC["paths"]["/api/threads/{threadId}/messages"]["post"]
    described = operation["responses"]["200"]["x-sse-events"]
    for event in events:
        errors = list(_validator(described[event.name]["data"]).iter_errors(event.data))
        assert not errors, f"{event.name}: {[e.message for e in errors]}"
    names = [event.name for event in events]
    assert names[0] == "message.created" and names[-1] in ("done", "error"), names
    return events


# --- the document ---------------------------------------------------------------------------
def test_the_document_is_served_to_anyone_and_valid(suite):
    response = requests.get(suite.url("gateway") + "/api/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers.get("X-Request-Id")
    document = response.json()
    assert document == SPEC  # what test_fuzz.py fuzzes is what the gateway serves
    validate_openapi(document)


def test_every_operation_answers_what_the_document_says(signed_in: Browserless, suite):
    c = signed_in
    seen: set[tuple[str, str]] = set()

    def check(response: requests.Response, status: int) -> requests.Response:
        assert response.status_code == status, response.text
        assert_conforms(response)
        seen.add((response.request.method, _match_path(response.request.path_url.split("?", 1)[0])))
        return response

    check(c.get("/api/healthz"), 200)
    check(c.get("/api/openapi.json"), 200)
    check(c.get("/api/docs"), 200)
    check(c.get("/api/providers"), 200)
    check(c.get("/api/auth/me"), 200)
    check(c.get("/api/usage/free"), 200)
    key = check(
        c.post("/api/providers/openai/keys", json={"apiKey": "sk-doc" + uuid.uuid4().hex, "label": "doc"}),
        201,
    ).json()["key"]
    check(c.post("/api/providers/openai/keys", json={"apiKey": "sk-invalid-doc"}), 400)
    check(c.get("/api/providers/openai/keys"), 200)
    check(c.post(f"/api/providers/openai/keys/{key['id']}/validate"), 200)
    check(c.get("/api/providers/openai/models", params={"keyId": key["id"]}), 200)
    check(c.post("/api/providers/openai/models/refresh", json={}), 200)
    check(c.get("/api/providers/anthropic/models"), 409)
    thread = check(
        c.post(
            "/api/threads",
            json={
                "mode": "byok",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "keyId": key["id"],
                "systemPrompt": "Be brief.",
                "settings": {"temperature": 0.5, "maxTokens": 64, "topP": 1},
            },
        ),
        201,
    ).json()["thread"]
    free = check(c.post("/api/threads", json={"mode": "free", "title": "free"}), 201).json()["thread"]
    check(c.post("/api/threads", json={"mode": "free", "model": "x"}), 400)
    for thread_id in (thread["id"], free["id"]):
        stream = send(c, thread_id, "Hello [[sim:tokens=3]]")
        assert stream.status_code == 200
        events = assert_stream_conforms(stream)
        assert events[-1].name == "done"
        seen.add(("POST", "/api/threads/{threadId}/messages"))
    failed = assert_stream_conforms(send(c, free["id"], "[[sim:fail_mid=1]] [[sim:tokens=4]]"))
    assert failed[-1].name == "error"
    check(c.post(f"/api/threads/{free['id']}/messages", json={"content": ""}), 400)
    check(c.get("/api/threads", params={"limit": 1}), 200)
    check(c.get(f"/api/threads/{thread['id']}"), 200)
    check(c.patch(f"/api/threads/{thread['id']}", json={"title": "renamed"}), 200)
    check(c.delete(f"/api/threads/{thread['id']}"), 204)
    check(c.get(f"/api/threads/{thread['id']}"), 404)
    check(c.delete(f"/api/providers/openai/keys/{key['id']}"), 204)
    check(c.post(f"/api/providers/openai/keys/{key['id']}/validate"), 409)
    check(c.post("/api/auth/password-reset/request", json={"email": "nobody@example.com"}), 202)
    check(
        c.post("/api/auth/password-reset/confirm", json={"token": "nope", "password": "long enough pw"}), 400
    )
    check(c.post("/api/auth/email-verification/request"), 202)
    check(c.post("/api/auth/email-verification/confirm", json={"token": "nope"}), 400)
    check(c.post("/api/auth/logout"), 204)
    check(c.get("/api/auth/me"), 401)
    anonymous = Browserless(suite)
    check(anonymous.post("/api/auth/login", json={"email": "nobody@example.com", "password": "x" * 8}), 401)
    check(anonymous.post("/api/auth/register", json={"email": "not an email", "password": "x" * 8}), 400)
    me = Browserless(suite)
    me.register()
    me.http.headers["Origin"] = "https://evil.example"
    check(me.post("/api/threads", json={"mode": "free"}), 403)

    documented = {
        (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert seen == documented


# --- regressions: each found by tests/e2e/test_fuzz.py ----------------------------------------
def test_an_undocumented_method_is_405_with_allow_before_any_session_check(client: Browserless):
    """gateway/api.py: catch-all routes answered `PUT /api/auth/register` with 401 (they required a
    session first) and advertised every method in `Allow`."""
    for method, path in [
        ("PUT", "/api/auth/register"),
        ("GET", "/api/auth/login"),
        ("PUT", "/api/threads/x"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 405, (method, path, response.text)
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response.headers["Allow"]
    allow = client.request("OPTIONS", "/api/auth/me").headers["Allow"]
    assert {m.strip() for m in allow.split(",")} == {"GET", "HEAD", "OPTIONS"}
    allow = client.request("OPTIONS", "/api/threads/x").headers["Allow"]
    assert {m.strip() for m in allow.split(",")} == {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}
    assert client.get("/api/usage/elsewhere").status_code == 404


def test_an_escaped_character_in_an_id_reaches_the_service_escaped(signed_in: Browserless):
    """gateway/proxy.py: the decoded path was forwarded, so `%3F` became a query and `%23` a fragment:
    `GET /api/threads/<id>%3Fx=1` read thread <id>, `POST .../<id>%23x/messages` hit a 405."""
    thread = signed_in.post("/api/threads", json={"mode": "free"}).json()["thread"]
    assert signed_in.get(f"/api/threads/{thread['id']}").status_code == 200
    for path in (f"/api/threads/{thread['id']}%3Fx=1", f"/api/threads/{thread['id']}%23x"):
        response = signed_in.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    response = signed_in.post(
        f"/api/threads/{thread['id']}%23x/messages", json={"content": "hi", "clientRequestId": "r1"}
    )
    assert response.status_code == 404, response.text
    response = signed_in.delete(f"/api/providers/openai/keys/{uuid.uuid4()}%3F")
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"temperature": "0.5"}, "temperature"), ({"topP": "1"}, "topP"), ({"maxTokens": 1.5}, "maxTokens")],
)
def test_thread_settings_take_json_numbers_not_numeric_strings(signed_in: Browserless, settings, field):
    """chat_service/schemas.py: marshmallow's Float took the string "0.5" as 0.5 (the document says
    number)."""
    response = signed_in.post("/api/threads", json={"mode": "free", "settings": settings})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"]["settings"]
    assert_conforms(response)


def test_an_integral_max_tokens_written_as_a_float_is_the_same_json_number(signed_in: Browserless):
    """chat_service/schemas.py: `maxTokens: 200.0` (a JSON Schema integer) was refused as "Not a valid
    integer"."""
    response = signed_in.post("/api/threads", json={"mode": "free", "settings": {"maxTokens": 200.0}})
    assert response.status_code == 201, response.text
    assert response.json()["thread"]["settings"] == {"maxTokens": 200}
    assert_conforms(response)


def _cursor(updated_at, thread_id) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at, thread_id]).encode()).decode().rstrip("=")


@pytest.mark.parametrize("thread_id", ["a\x00b", 7, None, ["x"]])
def test_a_forged_cursor_is_a_400_not_a_500(signed_in: Browserless, thread_id):
    """chat_service/threads.py: a cursor whose id held a NUL reached Postgres (500); a non-string id
    was turned into a string and queried."""
    response = signed_in.get("/api/threads", params={"cursor": _cursor("2026-01-01T00:00:00", thread_id)})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["fields"] == {"cursor": ["Not a cursor from this API."]}
    assert_conforms(response)
