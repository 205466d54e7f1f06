"""Request ids: a sane incoming X-Request-Id is echoed, logged and forwarded; anything else is replaced."""

from __future__ import annotations

import re

import pytest
from flask import g

from shared.http import ServiceClient
from shared.internal_auth import HEADER, InternalCredentials

GENERATED = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def app(make_app):
    app = make_app("rid")

    @app.get("/hello")
    def hello():
        return {"requestId": g.request_id}

    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.mark.parametrize(
    "incoming",
    [
        "abc123",
        "5f1c9a6e-2b7d-4c1e-9f0a-3b2c1d0e9f8a",
        "5f1c9a6e2b7d4c1e9f0a3b2c1d0e9f8a",
        "web.1:retry_2",
        "a",
        "R" * 128,
    ],
)
def test_sane_incoming_request_id_is_echoed_and_used(client, incoming):
    response = client.get("/hello", headers={"X-Request-Id": incoming})

    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == incoming
    assert response.get_json() == {"requestId": incoming}


INSANE = {
    "too-long": "R" * 129,
    "far-too-long": "x" * 5000,
    "space": "abc def",
    "angle-brackets": "<script>alert(1)</script>",
    "quote": 'abc"def',
    "semicolon": "abc;def",
    "slash": "../../etc/passwd",
    "percent-encoded-crlf": "abc%0d%0aSet-Cookie:x=1",
    "non-ascii": "zürich-1",
    "json": '{"id":1}',
    "empty": "",
}


@pytest.mark.parametrize("incoming", list(INSANE.values()), ids=list(INSANE))
def test_insane_request_id_is_replaced_with_a_generated_one(client, incoming):
    response = client.get("/hello", headers={"X-Request-Id": incoming})

    assert response.status_code == 200
    assert GENERATED.match(response.headers["X-Request-Id"])
    assert response.get_json() == {"requestId": response.headers["X-Request-Id"]}


@pytest.mark.parametrize(
    "raw_header",
    [
        "abc\n",
        "abc\r\n",
        "abc\nSet-Cookie: keylm_session=evil",
        "abc\r\nSet-Cookie: keylm_session=evil",
        "abc\rdef",
        "abc\x00def",
        "abc\tdef",
    ],
    ids=["trailing-lf", "trailing-crlf", "lf-injection", "crlf-injection", "cr", "nul", "tab"],
)
def test_header_injection_attempt_is_replaced_not_echoed(client, raw_header):
    # The test client refuses such header values, so they go straight into the WSGI environ,
    # as a lenient server or proxy in front of us could pass them on.
    response = client.get("/hello", environ_overrides={"HTTP_X_REQUEST_ID": raw_header})

    assert response.status_code == 200
    assert GENERATED.match(response.headers["X-Request-Id"])
    assert "Set-Cookie" not in response.headers


def test_missing_request_id_is_generated_fresh_per_request(client):
    first = client.get("/hello").headers["X-Request-Id"]
    second = client.get("/hello").headers["X-Request-Id"]

    assert GENERATED.match(first) and GENERATED.match(second)
    assert first != second


@pytest.mark.parametrize("path", ["/hello", "/no/such/path", "/healthz", "/metrics"])
def test_every_response_carries_a_request_id(client, path):
    assert client.get(path).headers["X-Request-Id"]


def test_request_log_line_carries_the_request_id_and_no_query_string(app, client, json_log):
    log = json_log("rid")

    client.get("/hello?token=abcdef123456", headers={"X-Request-Id": "trace-me-42"})

    [line] = [r for r in log.records if r["message"] == "request"]
    assert line["request_id"] == "trace-me-42"
    assert line["path"] == "/hello"
    assert line["status"] == 200
    assert "abcdef123456" not in log.text


def test_replaced_request_id_is_the_one_logged(app, client, json_log):
    log = json_log("rid")

    response = client.get("/hello", headers={"X-Request-Id": "bad id"})

    [line] = [r for r in log.records if r["message"] == "request"]
    assert line["request_id"] == response.headers["X-Request-Id"]


def test_request_id_is_forwarded_to_other_services_with_a_credential(app):
    settings = app.extensions["keylm.settings"]
    client = ServiceClient(settings, caller="gateway")

    with app.test_request_context("/hello", headers={"X-Request-Id": "follow-me-7"}):
        app.preprocess_request()
        headers = client.headers("auth", "GET", "/internal/x", user_id="u-1", session_id="s-1")

    assert headers["X-Request-Id"] == "follow-me-7"
    auth = InternalCredentials("auth", trusted=settings.trusted_keys(["gateway"]))
    caller = auth.verify(headers[HEADER], method="GET", target="/internal/x", body=b"")
    assert (caller.service, caller.user_id, caller.session_id) == ("gateway", "u-1", "s-1")
