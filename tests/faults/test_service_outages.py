"""An internal service is killed (keys_service, quota_service) and started again, with the others
left running: clear 503s in the envelope, nothing half-written, and it all works again after."""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.e2e.sse import Event
from tests.faults.conftest import (
    FaultClient,
    ServiceDown,
    assert_invariants,
    assert_terminal_error,
    launch_fault_suite,
    new_key,
    only_events,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# A refusal from a dead service must come quickly: no hang, no long retry loop.
REFUSAL_SECONDS = 5.0


@pytest.fixture(scope="module", params=BACKENDS)
def suite(request, tmp_path_factory):
    return launch_fault_suite(
        tmp_path_factory, request, request.param, "outages", PROVIDER_READ_TIMEOUT_SECONDS="2"
    )


def assert_service_unavailable(response, started: float) -> None:
    assert time.monotonic() - started < REFUSAL_SECONDS
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "service_unavailable" and error["retryable"] is True, error


def assert_health(client: FaultClient, down: str | None) -> None:
    response = client.get("/api/healthz")
    services = response.json()["services"]
    if down is None:
        assert response.status_code == 200 and set(services.values()) == {"ok"}, services
    else:
        assert response.status_code == 503, response.text
        assert services[down] == "down"
        assert all(status == "ok" for name, status in services.items() if name != down), services


def test_keys_service_killed_then_restarted(suite):
    client = FaultClient(suite)
    thread, _ = client.byok_thread("openai")
    assert only_events(client.exchange(thread["id"], "before"))[-1].name == "done"
    request_id = uuid.uuid4().hex

    with ServiceDown(suite, "keys"):
        started = time.monotonic()
        added = client.post("/api/providers/openai/keys", json={"apiKey": new_key("openai")})
        assert_service_unavailable(added, started)

        started = time.monotonic()
        refused = client.send(thread["id"], "while keys is down", request_id=request_id)
        assert_service_unavailable(refused, started)
        # Nothing half-written: no user message for the refused send.
        messages = client.messages(thread["id"])
        assert [m["content"] for m in messages if m["role"] == "user"] == ["before"]
        assert len(messages) == 2

        assert_health(client, down="keys")

    assert_health(client, down=None)
    keys = client.get("/api/providers/openai/keys").json()["keys"]
    assert len(keys) == 1  # the refused key was not stored
    client.add_key("openai")
    # The refused send, retried as is, now goes through, once.
    events = only_events(client.exchange(thread["id"], "while keys is down", request_id=request_id))
    assert events[-1].name == "done"
    users = [m for m in client.messages(thread["id"]) if m["role"] == "user"]
    assert [m["content"] for m in users] == ["before", "while keys is down"]
    assert_invariants(suite)


def test_quota_service_killed_then_restarted(suite):
    client = FaultClient(suite)
    thread = client.free_thread()
    assert only_events(client.exchange(thread["id"], "before"))[-1].name == "done"
    request_id = uuid.uuid4().hex

    with ServiceDown(suite, "quota"):
        started = time.monotonic()
        refused = client.send(thread["id"], "while quota is down", request_id=request_id)
        # Refused before streaming: a plain JSON error, not an SSE stream.
        assert_service_unavailable(refused, started)
        messages = client.messages(thread["id"])
        assert [m["content"] for m in messages if m["role"] == "user"] == ["before"]
        assert len(messages) == 2
        started = time.monotonic()
        assert_service_unavailable(client.get("/api/usage/free"), started)
        assert_health(client, down="quota")

    assert_health(client, down=None)
    assert client.get("/api/usage/free").json()["user"]["used"] == 1
    events = only_events(client.exchange(thread["id"], "while quota is down", request_id=request_id))
    assert events[-1].name == "done"
    assert client.get("/api/usage/free").json()["user"]["used"] == 2
    assert_invariants(suite)


def test_quota_service_down_when_a_free_request_must_be_given_back(suite):
    """The provider fails before the first token while quota_service is down: the reservation must
    still be given back once quota_service is back (no free request lost to the outage)."""
    client = FaultClient(suite)
    thread = client.free_thread()
    response = client.send(thread["id"], "Think forever [[sim:hang]]")
    stream = client.events(response)
    first = next(item for item in stream if isinstance(item, Event))
    assert first.name == "message.created"  # the request is reserved and stored

    with ServiceDown(suite, "quota"):
        items = [first, *stream]  # the provider times out (2 s) while quota is down
        assert_terminal_error(items, "upstream_unavailable")
    response.close()

    assert_invariants(suite, timeout=15)
    assert client.get("/api/usage/free").json()["user"]["used"] == 0


def test_a_refund_quota_cannot_take_survives_a_chat_service_restart(suite):
    """The refund of a failed free request cannot reach quota_service, and chat_service is killed and
    started again before quota_service is back: the refund lives in chat's outbox table, not in the
    dead process, so the new process delivers it once quota_service answers."""
    client = FaultClient(suite)
    thread = client.free_thread()
    response = client.send(thread["id"], "Think forever [[sim:hang]]")
    stream = client.events(response)
    first = next(item for item in stream if isinstance(item, Event))
    assert first.name == "message.created"
    suite.stop("quota", signal.SIGKILL)
    try:
        items = [first, *stream]  # the provider times out (2 s) while quota is down: refund pending
        assert_terminal_error(items, "upstream_unavailable")
        response.close()
        suite.stop("chat", signal.SIGKILL)
        suite.start("chat")
        suite.wait_healthy(["chat"])
    finally:
        suite.start("quota")
        suite.wait_healthy(["quota"])

    wait_until(
        lambda: _used(client) == 0, timeout=30, what="the refund after chat_service restarted", interval=0.5
    )
    assert_invariants(suite, timeout=15)


def _used(client: FaultClient) -> int | None:
    response = client.get("/api/usage/free")
    return response.json()["user"]["used"] if response.status_code == 200 else None


def test_keys_service_down_while_a_byok_reply_streams(suite):
    """A key already handed over keeps working; the stream finishes and is stored."""
    client = FaultClient(suite)
    thread, _ = client.byok_thread("openai")
    response = client.send(thread["id"], "Slow [[sim:delay=50]] [[sim:tokens=30]]")
    stream = client.events(response)
    first = next(item for item in stream if isinstance(item, Event))
    with ServiceDown(suite, "keys"):
        events = [first, *(item for item in stream if isinstance(item, Event))]
        assert events[-1].name == "done", events[-1]
    response.close()
    assert client.messages(thread["id"])[-1]["status"] == "complete"
    assert_invariants(suite)


@pytest.fixture(scope="module")
def short_lease_suite(request, tmp_path_factory):
    return launch_fault_suite(tmp_path_factory, request, "sqlite", "lease", STREAM_LEASE_SECONDS="2")


def test_chat_service_killed_mid_stream_leaves_no_reply_streaming(short_lease_suite):
    """The reply a dead chat_service was streaming expires with its lease and can be retried."""
    client = FaultClient(short_lease_suite)
    thread, _ = client.byok_thread("openai")
    request_id = uuid.uuid4().hex
    # A retry must send the same content (other content under that clientRequestId is a 409), so
    # the reply is long enough to be cut, and short enough to be streamed again in full.
    content = "Long [[sim:delay=100]] [[sim:tokens=30]]"
    response = client.send(thread["id"], content, request_id)
    events = client.events(response)
    next(e for e in events if isinstance(e, Event) and e.name == "delta")
    with ServiceDown(short_lease_suite, "chat"):
        response.close()
    time.sleep(2.5)  # the lease (2 s) runs out: no process renews it any more
    reply = client.messages(thread["id"])[-1]
    assert reply["status"] == "failed" and reply["error"]["code"] == "interrupted"
    retried = only_events(client.exchange(thread["id"], content, request_id))
    assert retried[-1].name == "done"
    assert_invariants(short_lease_suite)


def test_a_free_reply_orphaned_by_a_killed_chat_service_gives_its_request_back(short_lease_suite):
    """The text of an orphaned reply died with its process: its free request must not count, and
    the retry in its place takes the only one."""
    client = FaultClient(short_lease_suite)
    thread = client.free_thread()
    request_id = uuid.uuid4().hex
    # Long enough to outlive the kill, short enough for the retry (it repeats this same message).
    response = client.send(thread["id"], "Long [[sim:delay=50]] [[sim:tokens=100]]", request_id)
    events = client.events(response)
    next(e for e in events if isinstance(e, Event) and e.name == "delta")
    with ServiceDown(short_lease_suite, "chat"):
        response.close()
    time.sleep(2.5)  # the lease (2 s) runs out: no process renews it any more
    reply = client.messages(thread["id"])[-1]
    assert reply["status"] == "failed" and reply["content"] == ""
    assert client.get("/api/usage/free").json()["user"]["used"] == 0
    retried = only_events(
        client.exchange(thread["id"], "Long [[sim:delay=50]] [[sim:tokens=100]]", request_id)
    )
    assert retried[-1].name == "done"
    assert_invariants(short_lease_suite)


def test_a_stream_whose_reply_was_failed_as_orphaned_ends_interrupted_not_done(short_lease_suite):
    """A process that stalled past its lease finds its reply failed by a reader (which gave the
    free request back): it must not tell the client the reply is complete."""
    client = FaultClient(short_lease_suite)
    thread = client.free_thread()
    response = client.send(thread["id"], "Long [[sim:delay=100]] [[sim:tokens=30]]")
    events = client.events(response)
    created = next(e for e in events if isinstance(e, Event) and e.name == "message.created")
    # What a reader on another replica does to a reply whose lease ran out.
    chat_db = Path(short_lease_suite.env["KEYLM_VAR_DIR"]) / "chat.db"
    with sqlite3.connect(chat_db, timeout=10) as connection:
        connection.execute(
            "UPDATE messages SET status = 'failed' WHERE id = ?", (created.data["assistantMessage"]["id"],)
        )

    terminal = [e for e in only_events(list(events)) if e.name in ("done", "error")]

    assert [e.name for e in terminal] == ["error"]
    assert terminal[0].data["error"]["code"] == "interrupted" and terminal[0].data["error"]["retryable"]


def test_a_live_stream_longer_than_the_lease_is_not_expired(short_lease_suite):
    client = FaultClient(short_lease_suite)
    thread, _ = client.byok_thread("openai")
    response = client.send(thread["id"], "Long [[sim:delay=100]] [[sim:tokens=45]]")
    seen = []
    for item in client.events(response):
        if isinstance(item, Event) and item.name == "delta" and len(seen) in (0, 30):
            seen.append(client.messages(thread["id"])[-1]["status"])  # read while 3+ s in
        if isinstance(item, Event) and item.name == "delta":
            seen.append("delta")
    assert client.messages(thread["id"])[-1]["status"] == "complete"
    assert [s for s in seen if s != "delta"] == ["streaming", "streaming"]
