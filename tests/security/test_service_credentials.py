"""The internal credential at each service port: only a fresh credential signed with the caller's
own key, by a caller the service names, for that very service, method, path and body, used once, is
accepted; and the gateway cannot be steered into a service's internal routes.
"""

from __future__ import annotations

import json
import uuid

import pytest

from shared.internal_auth import HEADER as CREDENTIAL_HEADER
from shared.signing import new_private_key
from tests.conftest import unique_email
from tests.security.conftest import (
    SERVICES,
    Unsigned,
    credential_headers,
    direct,
    dump_database,
    session_claims,
    signed_in_client,
)

pytestmark = pytest.mark.e2e


def endpoints(
    user_id: str, session_id: str, email: str
) -> dict[str, list[tuple[str, str, str, dict | None]]]:
    """Per service: (caller, method, path, json body) that a valid credential may call."""
    return {
        "auth": [
            ("gateway", "GET", "/api/auth/me", None),
            ("gateway", "POST", "/api/auth/password-reset/request", {"email": email}),
            ("gateway", "POST", "/api/auth/logout", None),
            ("gateway", "GET", f"/internal/sessions/{session_id}", None),
        ],
        "keys": [
            ("gateway", "GET", "/api/providers/openai/keys", None),
            ("gateway", "POST", "/api/providers/openai/keys", {"apiKey": "sk-proj-" + uuid.uuid4().hex}),
            ("chat", "POST", "/internal/keys/resolve", {"provider": "openai", "keyId": None}),
        ],
        "chat": [
            ("gateway", "GET", "/api/threads", None),
            ("gateway", "POST", "/api/threads", {"mode": "free", "title": "forged"}),
            ("gateway", "GET", "/api/providers/openai/models", None),
        ],
        "quota": [
            ("gateway", "GET", "/api/usage/free", None),
            ("chat", "POST", "/internal/free/reserve", None),
            ("chat", "POST", "/internal/free/release", {"reservationId": str(uuid.uuid4())}),
        ],
    }


def bad_credentials(
    suite, caller: str, service: str, user_id: str, session_id: str, method: str, path: str, body: bytes
) -> dict[str, dict]:
    other_service = next(s for s in (*SERVICES, "gateway") if s not in (service, caller))
    # A service `service` does not accept at all (keys calls no one; gateway is accepted everywhere).
    uninvited = "keys" if service != "keys" else "quota"
    impostor_key = suite.env["GATEWAY_SIGNING_KEY"] if caller != "gateway" else suite.env["CHAT_SIGNING_KEY"]
    good = Unsigned(suite, caller, service, user_id, session_id).sign(method, path, body)
    other_method = "DELETE" if method != "DELETE" else "GET"

    def signed(**how) -> dict:
        return {CREDENTIAL_HEADER: Unsigned(suite, caller, service, user_id, session_id, **how)}

    return {
        "none": {},
        "empty": {CREDENTIAL_HEADER: ""},
        "garbage": {CREDENTIAL_HEADER: "not-a-credential"},
        "forged (another key)": signed(key=new_private_key()),
        # A breached gateway (or chat) signing as another service with its own key.
        "signed by another service's key": signed(key=impostor_key),
        "from a service this one does not accept": {
            CREDENTIAL_HEADER: Unsigned(suite, uninvited, service, user_id, session_id)
        },
        "tampered signature": {CREDENTIAL_HEADER: good[:-2] + ("AA" if not good.endswith("AA") else "BB")},
        "expired": signed(clock=-3600),
        "issued in the future": signed(clock=3600),
        "for another service": {
            CREDENTIAL_HEADER: Unsigned(suite, caller, other_service, user_id, session_id)
        },
        "for the caller itself": {CREDENTIAL_HEADER: Unsigned(suite, caller, caller, user_id, session_id)},
        "for another path": signed(bind=(method, path + "x", body)),
        "for another method": signed(bind=(other_method, path, body)),
        "for another body": signed(bind=(method, path, body + b" ")),
        "valid, but as a bearer token": {"Authorization": f"Bearer {good}"},
        "identity headers only": {"X-User-Id": user_id, "X-KeyLM-Service": caller, "X-KeyLM-User": user_id},
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_refuses_anything_but_a_valid_credential_for_itself(sec_suite, service):
    client = signed_in_client(sec_suite)
    claims = session_claims(sec_suite, client)
    user_id, session_id = claims["uid"], claims["sid"]
    before = dump_database(sec_suite, [service])

    for caller, method, path, body in endpoints(user_id, session_id, client.user["email"])[service]:
        sent = json.dumps(body).encode() if body is not None else b""
        bad = bad_credentials(sec_suite, caller, service, user_id, session_id, method, path, sent)
        for name, headers in bad.items():
            response = direct(sec_suite, service, method, path, json=body, headers=headers)
            assert response.status_code == 401, (service, method, path, name, response.text)
            assert response.json()["error"]["code"] == "unauthenticated"
    # Nothing was done on the strength of a bad credential.
    assert dump_database(sec_suite, [service]) == before

    for caller, method, path, body in endpoints(user_id, session_id, client.user["email"])[service]:
        headers = credential_headers(sec_suite, caller, service, user_id, session_id)
        sent = json.dumps(body).encode() if body is not None else b""
        signed = {CREDENTIAL_HEADER: headers[CREDENTIAL_HEADER].sign(method, path, sent)}
        response = direct(sec_suite, service, method, path, json=body, headers=signed)
        assert response.status_code != 401, (service, method, path, response.text)
        assert response.status_code < 500, (service, method, path, response.text)
        # The same credential a second time: refused, whatever the first one did.
        replayed = direct(sec_suite, service, method, path, json=body, headers=signed)
        assert replayed.status_code == 401, (service, method, path, "replayed", replayed.text)
        assert replayed.json()["error"]["code"] == "unauthenticated"


def test_a_bad_credential_has_no_side_effect_anywhere(sec_suite):
    """Writes with bad credentials: no user, no mail, no key, no thread, no reservation."""
    client = signed_in_client(sec_suite)
    user_id = client.user["id"]
    email = unique_email("forged")
    forged_key = new_private_key()
    writes = [
        ("auth", "POST", "/api/auth/register", {"email": email, "password": "correct horse battery"}),
        ("auth", "POST", "/api/auth/password-reset/request", {"email": client.user["email"]}),
        ("keys", "POST", "/api/providers/openai/keys", {"apiKey": "sk-proj-" + uuid.uuid4().hex}),
        ("chat", "POST", "/api/threads", {"mode": "free"}),
        ("quota", "POST", "/internal/free/reserve", None),
    ]
    before = dump_database(sec_suite)
    for service, method, path, body in writes:
        for headers in (
            credential_headers(sec_suite, "chat", service, user_id, key=forged_key),
            credential_headers(sec_suite, "gateway", service, user_id, key=forged_key),
        ):
            response = direct(sec_suite, service, method, path, json=body, headers=headers)
            assert response.status_code == 401, (service, path, response.text)
    assert dump_database(sec_suite) == before
    assert client.get("/api/usage/free").json()["user"]["used"] == 0


TRAVERSALS = [
    "/api/auth/%2e%2e/%2e%2e/internal/sessions/{sid}",
    "/api/auth/x/..%2f..%2f..%2finternal/sessions/{sid}",
    "/api/auth/%2E%2E/%2E%2E/internal/sessions/{sid}",
    "/api/auth/./%2e%2e/%2e%2e/internal/sessions/{sid}",
    "/api/providers/openai/keys/%2e%2e/%2e%2e/%2e%2e/%2e%2e/internal/keys/resolve",
    "/api/threads/%2e%2e/%2e%2e/internal/keys/resolve",
    "/api/usage/%2e%2e/%2e%2e/internal/free/reserve",
    "/api/usage/%2e%2e/%2e%2e/healthz",
    "/api/usage/%2e%2e/%2e%2e/metrics",
    "/api/threads/%2e%2e/%2e%2e/metrics",
    "/api/threads/%252e%252e/%252e%252e/metrics",
    "/api/usage/..%5c..%5cmetrics",
]


@pytest.mark.parametrize("template", TRAVERSALS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_gateway_never_forwards_outside_the_public_api(sec_suite, template, method):
    """A dot segment in the path must not walk the forwarded request into a service's `/internal/`
    routes (where the gateway's own credential would be trusted) or its open /healthz and /metrics."""
    import http.client

    client = signed_in_client(sec_suite)
    session_id = session_claims(sec_suite, client)["sid"]
    path = template.format(sid=session_id)
    # http.client sends the path as written (requests would resolve the dot segments itself).
    connection = http.client.HTTPConnection("127.0.0.1", sec_suite.ports["gateway"], timeout=30)
    try:
        connection.request(
            method,
            path,
            body="{}" if method == "POST" else None,
            headers={
                "Cookie": f"keylm_session={client.session_cookie}",
                "Origin": sec_suite.url("gateway"),
                "Content-Type": "application/json",
            },
        )
        response = connection.getresponse()
        status, body = response.status, response.read().decode("utf-8", errors="replace")
    finally:
        connection.close()
    assert status in (400, 404, 405), (path, status, body)
    for leaked in (client.user["id"], "userId", "reservationId", "python_gc", '"checks"'):
        assert leaked not in body, (path, body)
    assert client.get("/api/usage/free").json()["user"]["used"] == 0
