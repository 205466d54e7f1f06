"""Leak check (issues 3 and 6): after a run that exercises everything, no provider key, no
GROQ_API_KEY and no configured secret is in any log line, any response, any stored column (or, on
SQLite, any byte of the database files), or Redis; reset tokens are stored only as their hash.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.conftest import REDIS_URL, unique_email
from tests.e2e.sse import read_events
from tests.security.conftest import (
    BYOK_MODELS,
    PROCESSES,
    SERVICES,
    Recorded,
    RecordingClient,
    add_key,
    byok_thread,
    cells,
    credential_headers,
    direct,
    dump_database,
    encodings_of,
    free_thread,
    new_api_key,
    outbox_mail_to,
    read_logs,
    reset_token_from,
    send_message,
    signed_in_client,
)

pytestmark = pytest.mark.e2e

PASSWORD, NEW_PASSWORD = "first password " + uuid.uuid4().hex[:8], "second password " + uuid.uuid4().hex[:8]


@dataclass
class Run:
    """What the exercise did: the provider keys it used and everything it received."""

    journal: list[Recorded] = field(default_factory=list)
    provider_keys: dict[str, str] = field(default_factory=dict)  # name -> plaintext
    session_cookies: set[str] = field(default_factory=set)
    reset_tokens: list[str] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    audit_key_ids: dict[str, str] = field(default_factory=dict)


def done(response) -> str:
    return read_events(response)[-1].name


def record_raw(run: Run, response: requests.Response) -> None:
    run.journal.append(
        Recorded(
            response.request.method or "",
            response.url,
            response.status_code,
            "\n".join(f"{k}: {v}" for k, v in response.headers.items()),
            response.content.decode("utf-8", errors="replace"),
        )
    )


@pytest.fixture(scope="module")
def run(sec_suite, sim) -> Run:
    """Register, keys for all four providers (valid, odd-shaped, invalid, refused, during an outage),
    models, free and BYOK sends (fine and failing), re-validation, revocation, a password reset,
    another user poking at it all, logout; every response recorded."""
    run = Run(passwords=[PASSWORD, NEW_PASSWORD])
    alice = signed_in_client(sec_suite, run.journal, password=PASSWORD)
    run.session_cookies.add(alice.session_cookie)

    # --- keys: every provider, plus the shapes a redactor might not recognise -----------------
    keys = {}
    for provider in BYOK_MODELS:
        keys[provider] = add_key(alice, provider)
        run.provider_keys[provider] = keys[provider]["apiKey"]
    odd = "proxy." + uuid.uuid4().hex + uuid.uuid4().hex  # an OpenAI-compatible proxy's key
    keys["odd"] = add_key(alice, "openai", odd)
    run.provider_keys["odd"] = odd
    padded = new_api_key("groq")
    response = alice.post("/api/providers/groq/keys", json={"apiKey": f"  {padded}\n", "label": "padded"})
    assert response.status_code == 201, response.text
    keys["padded"] = {**response.json()["key"], "apiKey": padded}
    run.provider_keys["padded"] = padded
    for name, provider, api_key in (
        ("invalid", "anthropic", new_api_key("anthropic", tag="invalid")),
        ("invalid-odd", "gemini", "zz-invalid-" + uuid.uuid4().hex),
        ("invalid-groq", "groq", new_api_key("groq", tag="invalid")),
    ):
        run.provider_keys[name] = api_key
        response = alice.post(f"/api/providers/{provider}/keys", json={"apiKey": api_key, "label": "bad"})
        assert response.status_code == 400, response.text
    refused = {
        "with-space": {"apiKey": new_api_key("openai") + " " + uuid.uuid4().hex},
        "too-long": {"apiKey": new_api_key("openai") + "x" * 500},
    }
    in_label = new_api_key("openai")
    refused["in-label"] = {"apiKey": in_label, "label": f"my key {in_label}"}
    for name, body in refused.items():
        run.provider_keys[name] = body["apiKey"]
        response = alice.post("/api/providers/openai/keys", json=body)
        assert response.status_code == 400, (name, response.text)
    down_key = new_api_key("gemini")
    run.provider_keys["during-outage"] = down_key
    sim.set_down("gemini", True)
    try:
        assert alice.post("/api/providers/gemini/keys", json={"apiKey": down_key}).status_code == 503
    finally:
        sim.set_down("gemini", False)

    # --- listing, models, re-validation ----------------------------------------------------------
    for provider in BYOK_MODELS:
        assert alice.get(f"/api/providers/{provider}/keys").status_code == 200
        assert alice.get(f"/api/providers/{provider}/models?keyId={keys[provider]['id']}").status_code == 200
        refreshed = alice.post(
            f"/api/providers/{provider}/models/refresh", json={"keyId": keys[provider]["id"]}
        )
        assert refreshed.status_code == 200
        assert (
            alice.post(f"/api/providers/{provider}/keys/{keys[provider]['id']}/validate").status_code == 200
        )
    assert alice.get(f"/api/providers/openai/models?keyId={keys['odd']['id']}").status_code == 200
    sim.set_down("anthropic", True)
    try:
        assert (
            alice.post(f"/api/providers/anthropic/keys/{keys['anthropic']['id']}/validate").status_code == 503
        )
        stale = alice.post("/api/providers/anthropic/models/refresh", json={"keyId": keys["anthropic"]["id"]})
        assert stale.status_code == 200 and stale.json()["stale"] is True
    finally:
        sim.set_down("anthropic", False)

    # --- sends: free and BYOK, fine and failing --------------------------------------------------
    free = free_thread(alice, systemPrompt="Be brief.")
    assert done(send_message(alice, free["id"], "Hello [[sim:tokens=3]]")) == "done"
    assert done(send_message(alice, free["id"], "Again [[sim:fail_before]]")) == "error"
    threads = {
        provider: byok_thread(alice, provider, keys[provider]["id"], systemPrompt="Terse.")
        for provider in BYOK_MODELS
    }
    for thread in threads.values():
        request_id = uuid.uuid4().hex
        assert done(send_message(alice, thread["id"], "Hi [[sim:echo]]", request_id)) == "done"
        assert done(send_message(alice, thread["id"], "Hi [[sim:echo]]", request_id)) == "done"  # replay
    assert done(send_message(alice, threads["anthropic"]["id"], "Hi [[sim:fail_mid]]")) == "error"
    assert done(send_message(alice, threads["gemini"]["id"], "Hi [[sim:cut]]")) == "error"
    assert done(send_message(alice, threads["groq"]["id"], "Hi [[sim:429]]")) == "error"
    sim.set_down("openai", True)
    try:
        assert done(send_message(alice, threads["openai"]["id"], "Hi")) == "error"
    finally:
        sim.set_down("openai", False)
    odd_thread = byok_thread(alice, "openai", keys["odd"]["id"])
    assert done(send_message(alice, odd_thread["id"], "Hi")) == "done"
    # The provider revokes a key: the failing send marks it invalid, re-validation agrees.
    sim.revoke(keys["odd"]["apiKey"])
    assert done(send_message(alice, odd_thread["id"], "Hi again")) == "error"
    assert alice.post(f"/api/providers/openai/keys/{keys['odd']['id']}/validate").json()["key"]["status"] == (
        "invalid"
    )
    assert send_message(alice, odd_thread["id"], "Once more").status_code == 409

    # --- revoke ----------------------------------------------------------------------------------
    assert alice.delete(f"/api/providers/gemini/keys/{keys['gemini']['id']}").status_code == 204
    assert alice.get(f"/api/providers/gemini/models?keyId={keys['gemini']['id']}").status_code == 409
    assert send_message(alice, threads["gemini"]["id"], "after revoke").status_code == 409

    # --- another user tries it all ---------------------------------------------------------------
    bob = signed_in_client(sec_suite, run.journal)
    run.session_cookies.add(bob.session_cookie)
    for provider in BYOK_MODELS:
        assert bob.post(f"/api/providers/{provider}/keys/{keys[provider]['id']}/validate").status_code == 404
        assert bob.get(f"/api/providers/{provider}/models?keyId={keys[provider]['id']}").status_code == 404
        assert bob.get(f"/api/threads/{threads[provider]['id']}").status_code == 404

    # --- password reset, wrong logins, logout ----------------------------------------------------
    email = alice.user["email"]
    assert alice.post("/api/auth/password-reset/request", json={"email": email}).status_code == 202
    token = reset_token_from(outbox_mail_to(sec_suite, email))
    run.reset_tokens.append(token)
    assert alice.get(f"/reset?token={token}").status_code == 200  # the user opens the link
    confirm = "/api/auth/password-reset/confirm"
    assert alice.post(confirm, json={"token": token + "x", "password": NEW_PASSWORD}).status_code == 400
    confirmed = alice.post(confirm, json={"token": token, "password": NEW_PASSWORD})
    assert confirmed.status_code == 200, confirmed.text
    assert alice.get("/api/auth/me").status_code == 401  # every session ended
    assert alice.post("/api/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401
    assert alice.post("/api/auth/login", json={"email": email, "password": NEW_PASSWORD}).status_code == 200
    run.session_cookies.add(alice.session_cookie)
    assert alice.post("/api/auth/logout").status_code == 204

    # --- a request straight at the vault from the wrong service ---------------------------------
    record_raw(
        run,
        direct(
            sec_suite,
            "keys",
            "POST",
            "/internal/keys/resolve",
            json={"provider": "openai", "keyId": keys["openai"]["id"]},
            headers=credential_headers(sec_suite, "gateway", "keys", alice.user["id"]),
        ),
    )
    # --- what anyone can read: health, metrics, the API document ---------------------------------
    for name in SERVICES:
        for path in ("/healthz", "/metrics"):
            record_raw(run, direct(sec_suite, name, "GET", path))
        record_raw(run, requests.get(sec_suite.metrics_url(name), timeout=10))
    record_raw(run, requests.get(sec_suite.metrics_url("gateway"), timeout=10))
    anonymous = RecordingClient(sec_suite, run.journal)
    for path in ("/api/healthz", "/metrics", "/api/openapi.json", "/", "/reset"):
        anonymous.get(path)
    run.audit_key_ids = {name: key["id"] for name, key in keys.items()}
    return run


def env_secrets(suite) -> dict[str, str]:
    encryption_key = suite.env["APP_ENCRYPTION_KEY"]
    raw = base64.b64decode(encryption_key)
    return {
        "APP_ENCRYPTION_KEY": encryption_key,
        "APP_ENCRYPTION_KEY (url-safe)": base64.urlsafe_b64encode(raw).decode(),
        "APP_ENCRYPTION_KEY (hex)": raw.hex(),
        "APP_AUTH_SECRET": suite.env["APP_AUTH_SECRET"],
        **{
            f"{name}_SIGNING_KEY": suite.env[f"{name}_SIGNING_KEY"]
            for name in ("GATEWAY", "AUTH", "KEYS", "CHAT", "QUOTA")
        },
        "PASSWORD_PEPPER": suite.env["PASSWORD_PEPPER"],
        "GROQ_API_KEY": suite.env["GROQ_API_KEY"],
    }


def provider_secrets(suite, run: Run) -> dict[str, str]:
    """Each provider key (and GROQ_API_KEY) in every encoding, and the middle no mask shows."""
    found = {}
    for name, api_key in {**run.provider_keys, "GROQ_API_KEY": suite.env["GROQ_API_KEY"]}.items():
        for index, form in enumerate(encodings_of(api_key)):
            found[f"{name} (form {index})"] = form
        found[f"{name} (middle)"] = api_key[3:-4]
    return found


def leaks(text_by_place: dict[str, str], secrets: dict[str, str]) -> list[str]:
    found = []
    for place, text in text_by_place.items():
        for name, secret in secrets.items():
            if secret and secret in text:
                line = next((line for line in text.splitlines() if secret in line), "")
                found.append(f"{name} in {place}: {line[:400]}")
    return found


def test_the_run_exercised_every_provider_and_failure(sec_suite, run):
    statuses = {r.status for r in run.journal}
    assert {200, 201, 202, 204, 400, 401, 404, 409, 503} <= statuses
    assert len(run.provider_keys) >= 12
    logs = read_logs(sec_suite)
    assert all(logs[name] for name in PROCESSES if name != "simulator"), "a service wrote no log"


def test_no_provider_key_or_env_secret_in_any_log_line(sec_suite, run):
    logs = read_logs(sec_suite)
    assert not leaks(logs, provider_secrets(sec_suite, run))
    assert not leaks(logs, env_secrets(sec_suite))


def test_no_password_session_or_reset_token_in_any_log_line(sec_suite, run):
    logs = read_logs(sec_suite)
    personal = {f"password {i}": p for i, p in enumerate(run.passwords)}
    personal |= {f"session cookie {i}": c for i, c in enumerate(sorted(run.session_cookies))}
    personal |= {f"reset token {i}": t for i, t in enumerate(run.reset_tokens)}
    assert not leaks(logs, personal)


def test_no_provider_key_or_env_secret_in_any_response(sec_suite, run):
    assert len(run.journal) >= 80  # the run recorded what it received
    responses = {
        f"{r.method} {r.url} -> {r.status} {part}": text
        for index, r in enumerate(run.journal)
        for part, text in (("headers", r.headers), (f"body #{index}", r.body))
    }
    secrets = {**provider_secrets(sec_suite, run), **env_secrets(sec_suite)}
    secrets |= {f"password {i}": p for i, p in enumerate(run.passwords)}
    assert not leaks(responses, secrets)


def test_no_provider_key_or_secret_in_any_database_column(sec_suite, run):
    dump = dump_database(sec_suite)
    expected = {"auth.users", "keys.provider_keys", "keys.audit_logs", "chat.threads", "chat.messages"}
    assert expected <= set(dump)
    stored = {}
    for place, text in cells(dump):
        stored[place] = stored.get(place, "") + "\n" + text
    secrets = {**provider_secrets(sec_suite, run), **env_secrets(sec_suite)}
    secrets |= {f"password {i}": p for i, p in enumerate(run.passwords)}
    secrets |= {f"reset token {i}": t for i, t in enumerate(run.reset_tokens)}
    assert not leaks(stored, secrets)


def test_no_provider_key_in_any_byte_of_the_var_dir_or_redis(sec_suite, run):
    """Below the SQL view: free pages, the WAL, the outbox and logs on disk; and Redis' keys and values."""
    secrets = {**provider_secrets(sec_suite, run), **env_secrets(sec_suite)}
    secrets |= {f"password {i}": p for i, p in enumerate(run.passwords)}
    found = []
    for path in Path(sec_suite.env["KEYLM_VAR_DIR"]).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{name} in {path}" for name, secret in secrets.items() if secret.encode() in data]
    if "REDIS_URL" in sec_suite.env:
        import redis

        client = redis.Redis.from_url(sec_suite.env.get("REDIS_URL", REDIS_URL))
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            value = {
                "string": lambda k: client.get(k) or b"",
                "hash": lambda k: repr(client.hgetall(k)).encode(),
                "list": lambda k: repr(client.lrange(k, 0, -1)).encode(),
                "set": lambda k: repr(client.smembers(k)).encode(),
                "zset": lambda k: repr(client.zrange(k, 0, -1)).encode(),
            }.get(kind, lambda k: b"")(key)
            found += [
                f"{name} in redis {key!r}"
                for name, secret in secrets.items()
                if secret.encode() in key or secret.encode() in value
            ]
    assert not found


def test_the_vault_audited_every_step(sec_suite, run):
    rows = dump_database(sec_suite, ["keys"])["keys.audit_logs"]
    by_key: dict[str | None, set[str]] = {}
    for row in rows:
        by_key.setdefault(row["key_id"], set()).add(row["action"])
    ids = run.audit_key_ids
    assert {"create", "validate"} <= by_key[ids["openai"]]
    assert {"create", "revoke"} <= by_key[ids["gemini"]]
    assert {"create", "use_failed", "validate"} <= by_key[ids["odd"]]
    assert "create" in by_key.get(None, set()), "refused keys were not audited"


def test_reset_tokens_are_stored_only_as_their_sha256(sec_suite):
    client = signed_in_client(sec_suite)
    email = client.user["email"]
    assert client.post("/api/auth/password-reset/request", json={"email": email}).status_code == 202
    token = reset_token_from(outbox_mail_to(sec_suite, email))
    digest = hashlib.sha256(token.encode()).hexdigest()

    def auth_cells() -> list[tuple[str, str]]:
        return cells(dump_database(sec_suite, ["auth"]))

    stored = auth_cells()
    assert not [place for place, text in stored if token in text], "the reset token is stored in plaintext"
    assert [place for place, text in stored if text == digest] == ["auth.password_reset_tokens.token_hash"]
    # It is the real token (it works, once), and spending it stores nothing more of it.
    confirmed = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert not [place for place, text in auth_cells() if token in text]
    again = client.post("/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"
    # A request for an unknown email stores nothing at all.
    before = dump_database(sec_suite, ["auth"])["auth.password_reset_tokens"]
    assert client.post("/api/auth/password-reset/request", json={"email": unique_email()}).status_code == 202
    assert dump_database(sec_suite, ["auth"])["auth.password_reset_tokens"] == before
