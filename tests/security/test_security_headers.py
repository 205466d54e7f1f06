"""Security headers on pages, static files, API successes and API errors; and no stack trace, ever,
whatever bad input is thrown at the gateway.
"""

from __future__ import annotations

import http.client
import json

import pytest

from gateway.web import STATIC_DIR
from tests.e2e.sse import read_events
from tests.security.conftest import RecordingClient, free_thread, send_message, signed_in_client

pytestmark = pytest.mark.e2e

SAFE_REFERRER_POLICIES = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "origin",
}
STACK_TRACE_MARKERS = ("Traceback", 'File "/', "most recent call last", '.py", line', "site-packages")


def csp_directives(value: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
    return directives


def assert_security_headers(response, what: str) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy")
    assert csp, f"{what}: no Content-Security-Policy"
    directives = csp_directives(csp)
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts is not None, f"{what}: CSP restricts no script source: {csp}"
    for unsafe in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
        assert unsafe not in scripts, f"{what}: script-src allows {unsafe}: {csp}"
    assert headers.get("X-Content-Type-Options", "").lower() == "nosniff", what
    framing = headers.get("X-Frame-Options", "").upper() == "DENY" or directives.get("frame-ancestors") == [
        "'none'"
    ]
    assert framing, f"{what}: the page may be framed"
    policy = headers.get("Referrer-Policy", "").lower()
    assert policy in SAFE_REFERRER_POLICIES, f"{what}: Referrer-Policy {policy!r}"


def assert_no_stack_trace(text: str, what: str) -> None:
    for marker in STACK_TRACE_MARKERS:
        assert marker not in text, f"{what}: {marker!r} in {text[:500]!r}"


@pytest.fixture(scope="module")
def user(sec_suite) -> RecordingClient:
    return signed_in_client(sec_suite)


def static_files() -> list[str]:
    files = sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file())
    wanted = [f for f in files if f.endswith((".js", ".css", ".svg"))]
    assert wanted, files
    # One of each kind is enough: the headers come from one after_request hook.
    by_kind: dict[str, str] = {}
    for name in wanted:
        by_kind.setdefault(name.rsplit(".", 1)[1], name)
    return sorted(by_kind.values())


def test_pages_and_static_files_carry_the_security_headers(sec_suite, user):
    anonymous = RecordingClient(sec_suite)
    responses = {
        "/": anonymous.get("/"),
        "/reset": anonymous.get("/reset?token=abc"),
        "/ (signed in)": user.get("/"),
    }
    for name in static_files():
        responses[f"/static/{name}"] = anonymous.get(f"/static/{name}")
    responses["/static/missing"] = anonymous.get("/static/no-such-file.js")
    for what, response in responses.items():
        expected = 404 if what == "/static/missing" else 200
        assert response.status_code == expected, (what, response.status_code)
        assert_security_headers(response, what)
    # The page's own markup has no inline script for the CSP to forbid.
    html = responses["/"].text.lower()
    assert "<script>" not in html and "javascript:" not in html and " onclick=" not in html


def test_api_successes_errors_and_streams_carry_the_security_headers(sec_suite, user):
    anonymous = RecordingClient(sec_suite)
    thread = free_thread(user)
    stream = send_message(user, thread["id"], "Hi [[sim:tokens=2]]")
    assert read_events(stream)[-1].name == "done"
    cross_site = RecordingClient(sec_suite)
    cross_site.http.cookies.update(user.http.cookies)
    cross_site.http.headers["Origin"] = "https://evil.example"
    responses = {
        "GET /api/auth/me": (user.get("/api/auth/me"), 200),
        "GET /api/threads": (user.get("/api/threads"), 200),
        "POST /api/threads": (user.post("/api/threads", json={"mode": "free"}), 201),
        "GET /api/usage/free": (user.get("/api/usage/free"), 200),
        "GET /api/healthz": (anonymous.get("/api/healthz"), 200),
        "SSE stream": (stream, 200),
        "401": (anonymous.get("/api/auth/me"), 401),
        "404 thread": (user.get("/api/threads/no-such-thread"), 404),
        "404 route": (user.get("/api/no-such-route"), 404),
        "404 page": (anonymous.get("/no-such-page"), 404),
        "400": (user.post("/api/threads", json={"mode": "nonsense"}), 400),
        "400 json": (user.post("/api/threads", data="{", headers={"Content-Type": "application/json"}), 400),
        "403 csrf": (cross_site.post("/api/threads", json={"mode": "free"}), 403),
        "405": (user.request("PUT", "/api/usage/free"), 405),
        "409": (user.get("/api/providers/openai/models"), 409),
        "413": (user.post("/api/threads", data=b"x" * (2 * 1024 * 1024)), 413),
    }
    for what, (response, status) in responses.items():
        assert response.status_code == status, (what, response.status_code, response.text[:300])
        assert_security_headers(response, what)
        if status >= 400:
            assert_no_stack_trace(response.text, what)
            if what != "404 page":
                assert response.headers["Content-Type"].startswith("application/json"), what
                assert response.json()["error"]["code"], what


def bad_inputs(thread_id: str) -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    """(method, path, raw body, extra headers): malformed in every way we could think of."""
    as_json = {"Content-Type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    bodies = [
        b"{",
        b"[]",
        b"null",
        b"42",
        b'"a string"',
        deep,
        deep_object,
        b'{"email": "\\ud800@example.com", "password": "\\ud800\\ud800\\ud800\\ud800"}',
        b'{"email": "a\\u0000@example.com", "password": "pass\\u0000word"}',
        b"\xff\xfe\xfa not utf-8",
        b'{"email": 1e999, "password": -1e999}',
        b'{"email": ["a"], "password": {"b": 1}}',
        b'{"email": null, "password": null}',
        b'{"content": 123456789012345678901234567890, "clientRequestId": true}',
        b'{"__proto__": {"admin": true}, "constructor": 1}',
        b'{"a": 1, "a": 2}',
        b"NaN",
        b'{"mode": "byok", "provider": "../../etc/passwd", "model": "x", "keyId": "\' OR 1=1 --"}',
        b'{"mode": "free", "settings": {"temperature": "hot", "maxTokens": -5, "topP": 1e308}}',
        b'{"apiKey": "' + b"k" * 100_000 + b'"}',
    ]
    targets = [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/password-reset/request",
        "/api/auth/password-reset/confirm",
        "/api/threads",
        f"/api/threads/{thread_id}/messages",
        "/api/providers/openai/keys",
        "/api/providers/openai/models/refresh",
    ]
    cases = [("POST", target, body, as_json) for target in targets for body in bodies]
    cases += [("POST", target, b'{"a": 1}', {"Content-Type": "text/plain"}) for target in targets]
    cases += [("PATCH", f"/api/threads/{thread_id}", body, as_json) for body in bodies]
    queries = [
        "/api/threads?limit=-1",
        "/api/threads?limit=abc",
        "/api/threads?limit=99999999999999999999",
        "/api/threads?cursor=%00%ff",
        "/api/threads?cursor=" + "A" * 3000,
        "/api/threads?cursor=" + "A" * 5000,
        "/api/threads?cursor=eyJ4IjoxfQ",
        "/api/providers/openai/models?keyId=%00",
        "/api/providers/openai/models?refresh=maybe",
        "/api/providers/openai/models?keyId=" + "x" * 3000,
        "/api/providers/nosuch/models",
        "/api/providers/%00/keys",
        "/api/providers/openai/keys/%00/validate",
        "/api/threads/%00",
        "/api/threads/" + "x" * 3000,
        "/api/threads/" + "x" * 5000,
        "/api/threads/%ff%fe",
        "/api/usage/free?day=../../",
        "/static/%2e%2e/%2e%2e/shared/config.py",
        "/static/..%2f..%2fapp.py",
        "/api/openapi.json?x=%00",
    ]
    cases += [("GET", path, None, {}) for path in queries]
    # Odd ids in the path, with an otherwise valid request, so each reaches the database.
    send_body = json.dumps({"content": "hi", "clientRequestId": "odd-id"}).encode()
    for odd in ("%00", "a%00b", "%ff%fe", "%2e", "x" * 3000, "'%20OR%20'1'='1", "%E2%80%AE"):
        cases += [
            ("DELETE", f"/api/threads/{odd}", None, {}),
            ("PATCH", f"/api/threads/{odd}", b'{"title": "t"}', as_json),
            ("POST", f"/api/threads/{odd}/messages", send_body, as_json),
            ("POST", f"/api/providers/openai/keys/{odd}/validate", None, {}),
            ("DELETE", f"/api/providers/openai/keys/{odd}", None, {}),
            ("GET", f"/api/providers/openai/models?keyId={odd}", None, {}),
            ("POST", "/api/providers/openai/models/refresh", json.dumps({"keyId": odd}).encode(), as_json),
        ]
    cases += [(method, "/api/threads", None, {}) for method in ("OPTIONS", "TRACE", "PROPFIND")]
    return cases


def raw_request(suite, method, path, body, headers, cookie: str | None) -> tuple[int, str, str]:
    """http.client sends exactly what it is given (no normalizing of the path or the body)."""
    connection = http.client.HTTPConnection("127.0.0.1", suite.ports["gateway"], timeout=60)
    all_headers = {"Origin": suite.url("gateway"), **headers}
    if cookie:
        all_headers["Cookie"] = cookie
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace"), str(response.headers)
    finally:
        connection.close()


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_bad_input_never_yields_a_stack_trace_or_a_500(sec_suite, user, signed_in):
    thread = free_thread(user)
    cookie = f"keylm_session={user.session_cookie}" if signed_in else None
    failures = []
    for method, path, body, headers in bad_inputs(thread["id"]):
        status, text, raw_headers = raw_request(sec_suite, method, path, body, headers, cookie)
        what = f"{method} {path[:80]} {body[:60]!r}" if body else f"{method} {path[:80]}"
        for marker in STACK_TRACE_MARKERS:
            if marker in text or marker in raw_headers:
                failures.append((what, status, "stack trace", text[:300]))
        if status >= 500:
            failures.append((what, status, text[:300]))
        # 414 for a request line over 4094 bytes comes from gunicorn itself (HTML, no trace): the
        # app never sees it. Every other error is the app's, in the envelope.
        elif status >= 400 and status != 414 and path.startswith("/api/"):
            try:
                assert json.loads(text)["error"]["code"]
            except (ValueError, KeyError, TypeError, AssertionError):
                failures.append((what, status, "not the error envelope", text[:300]))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize(
    "cookie",
    [
        "keylm_session=garbage",
        "keylm_session=",
        "keylm_session=" + "a" * 4000,
        "keylm_session=eyJ1aWQiOiJ4In0.AAAA",
        'keylm_session="\\x00\\xff"',
        "keylm_session=a; keylm_session=b",
    ],
)
def test_a_broken_session_cookie_is_a_plain_401(sec_suite, cookie):
    status, text, _ = raw_request(sec_suite, "GET", "/api/threads", None, {}, cookie)
    assert status == 401, text
    assert_no_stack_trace(text, cookie)
    assert json.loads(text)["error"]["code"] == "unauthenticated"
