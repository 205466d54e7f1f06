"""Two users, every resource endpoint: B never reads, changes or learns of A's data.

A table of (method, path, body) built from A's ids is sent as B. Each answer is either a 404 that
is byte for byte the 404 of an id that never existed (so B cannot even learn that A's id exists), or
B's own (empty) data. Afterwards A re-reads everything and finds it unchanged, and A's key never
reached a provider on B's behalf.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.sse import read_events
from tests.security.conftest import (
    BYOK_MODELS,
    RecordingClient,
    add_key,
    byok_thread,
    free_thread,
    list_keys,
    send_message,
    signed_in_client,
)

pytestmark = pytest.mark.e2e

PROVIDERS = list(BYOK_MODELS)


@pytest.fixture(scope="module")
def alice(sec_suite) -> dict:
    """User A with keys for every provider, a free and a BYOK thread, each with a finished exchange."""
    client = signed_in_client(sec_suite)
    keys = {provider: add_key(client, provider, label=f"alice-{provider}-label") for provider in PROVIDERS}
    for provider in PROVIDERS:  # a cached catalog for each key
        assert client.get(f"/api/providers/{provider}/models?keyId={keys[provider]['id']}").status_code == 200
    free = free_thread(client, title="alice-free-title", systemPrompt="alice-free-system-prompt")
    byok = byok_thread(
        client, "openai", keys["openai"]["id"], title="alice-byok-title", systemPrompt="alice-byok-system"
    )
    request_ids = {}
    for thread in (free, byok):
        request_ids[thread["id"]] = "alice-req-" + uuid.uuid4().hex
        events = read_events(
            send_message(client, thread["id"], "alice-secret-question", request_ids[thread["id"]])
        )
        assert events[-1].name == "done", events[-1]
    first_page = client.get("/api/threads?limit=1").json()
    assert first_page["nextCursor"]
    return {
        "client": client,
        "keys": keys,
        "threads": {"free": free, "byok": byok},
        "request_ids": request_ids,
        "cursor": first_page["nextCursor"],
    }


def snapshot(client: RecordingClient, alice: dict) -> dict:
    """Everything A can see of A's data."""
    threads = client.get("/api/threads?limit=100").json()["threads"]
    full = {
        thread["id"]: client.get(f"/api/threads/{thread['id']}").json()
        for thread in alice["threads"].values()
    }
    keys = {provider: list_keys(client, provider) for provider in PROVIDERS}
    usage = client.get("/api/usage/free").json()
    return {"threads": threads, "full": full, "keys": keys, "usage": usage["user"]}


def a_table(alice: dict) -> list[tuple[str, str, dict | None, str]]:
    """(method, path, body, kind) for B, built from A's ids. kind: `404` or `own` (B's own data)."""
    free_id, byok_id = alice["threads"]["free"]["id"], alice["threads"]["byok"]["id"]
    key_id = alice["keys"]["openai"]["id"]
    rows: list[tuple[str, str, dict | None, str]] = []
    for thread_id in (free_id, byok_id):
        path = f"/api/threads/{thread_id}"
        rows += [
            ("GET", path, None, "404"),
            ("PATCH", path, {"title": "bob was here"}, "404"),
            ("DELETE", path, None, "404"),
            ("POST", f"{path}/messages", {"content": "bob asks", "clientRequestId": uuid.uuid4().hex}, "404"),
            # A's own request id: a replay must not hand B the stored reply.
            (
                "POST",
                f"{path}/messages",
                {"content": "alice-secret-question", "clientRequestId": alice["request_ids"][thread_id]},
                "404",
            ),
        ]
    for provider in PROVIDERS:
        provider_key = alice["keys"][provider]["id"]
        base = f"/api/providers/{provider}"
        rows += [
            ("POST", f"{base}/keys/{provider_key}/validate", None, "404"),
            ("DELETE", f"{base}/keys/{provider_key}", None, "404"),
            ("GET", f"{base}/models?keyId={provider_key}", None, "404"),
            ("GET", f"{base}/models?keyId={provider_key}&refresh=true", None, "404"),
            ("POST", f"{base}/models/refresh", {"keyId": provider_key}, "404"),
            ("GET", f"{base}/keys", None, "own"),
            ("GET", f"{base}/models", None, "own"),
            (
                "POST",
                "/api/threads",
                {"mode": "byok", "provider": provider, "model": BYOK_MODELS[provider], "keyId": provider_key},
                "own",
            ),
        ]
    rows += [
        # A key id under another provider's path is no better.
        ("POST", f"/api/providers/anthropic/keys/{key_id}/validate", None, "404"),
        ("GET", "/api/threads", None, "own"),
        ("GET", f"/api/threads?cursor={alice['cursor']}", None, "own"),
        ("GET", "/api/usage/free", None, "own"),
    ]
    return rows


def fresh_ids(alice: dict) -> dict[str, str]:
    """A's ids mapped to ids that never existed (for the 'same answer as nothing' comparison)."""
    ids = [t["id"] for t in alice["threads"].values()] + [k["id"] for k in alice["keys"].values()]
    return {old: str(uuid.uuid4()) for old in ids}


def substitute(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


def alice_markers(alice: dict, before: dict) -> list[str]:
    """Strings that only A's data holds: B's answers must contain none of them."""
    markers = ["alice-", alice["client"].user["id"], alice["client"].user["email"]]
    for key in alice["keys"].values():
        markers += [key["apiKey"], key["keyMask"]]
    for thread in before["full"].values():
        for message in thread["messages"]:
            markers += [message["id"], message["content"]]
    return markers


def test_user_b_never_reads_changes_or_learns_of_user_a_data(sec_suite, sim, alice):
    a = alice["client"]
    before = snapshot(a, alice)
    assert before["usage"]["used"] >= 1 and len(before["threads"]) == 2
    provider_calls = {p: len(sim.requests(k["apiKey"])) for p, k in alice["keys"].items()}

    bob = signed_in_client(sec_suite)
    mapping = fresh_ids(alice)
    markers = alice_markers(alice, before)
    for method, path, body, kind in a_table(alice):
        response = bob.request(method, path, json=body)
        where = (method, path, response.status_code, response.text[:300])
        for marker in markers:
            assert marker not in response.text, (marker, where)
        if kind == "404":
            assert response.status_code == 404, where
            assert response.json()["error"]["code"] == "not_found", where
            # The answer for A's id is the answer for an id that never existed.
            twin = bob.request(
                method, substitute(path, mapping), json=json.loads(substitute(json.dumps(body), mapping))
            )
            assert twin.status_code == 404, (where, twin.text)
            assert substitute(response.text, mapping) == twin.text, (where, twin.text)
        else:
            assert response.status_code in (200, 400, 404, 409), where
            if response.status_code >= 400:
                assert response.json()["error"]["code"] in ("key_not_active", "not_found", "validation_error")

    # B's own view is still empty: no thread, no key, no free request used.
    assert bob.get("/api/threads").json()["threads"] == []
    assert all(list_keys(bob, provider) == [] for provider in PROVIDERS)
    assert bob.get("/api/usage/free").json()["user"]["used"] == 0

    # A's data is unchanged, and A's keys never reached a provider for B.
    after = snapshot(a, alice)
    assert after == before
    assert {p: len(sim.requests(k["apiKey"])) for p, k in alice["keys"].items()} == provider_calls


def test_a_user_cannot_move_another_users_key_into_their_own_thread(sec_suite, alice):
    """B's own BYOK thread with A's key id: refused at creation, and A's key id is never stored for B."""
    bob = signed_in_client(sec_suite)
    own_key = add_key(bob, "openai")
    own = byok_thread(bob, "openai", own_key["id"])
    for body in (
        {
            "mode": "byok",
            "provider": "openai",
            "model": BYOK_MODELS["openai"],
            "keyId": alice["keys"]["openai"]["id"],
        },
        {
            "mode": "byok",
            "provider": "groq",
            "model": BYOK_MODELS["groq"],
            "keyId": alice["keys"]["groq"]["id"],
        },
    ):
        response = bob.post("/api/threads", json=body)
        assert response.status_code in (400, 404), response.text
    # An attempt to slip A's key or A's user into B's thread through extra fields is refused too.
    for extra in ({"keyId": alice["keys"]["openai"]["id"]}, {"userId": alice["client"].user["id"]}):
        response = bob.patch(f"/api/threads/{own['id']}", json={"title": "x", **extra})
        assert response.status_code == 400, response.text
    sent = read_events(send_message(bob, own["id"], "hello"))
    assert sent[-1].name == "done"
    assert [t["id"] for t in bob.get("/api/threads").json()["threads"]] == [own["id"]]
