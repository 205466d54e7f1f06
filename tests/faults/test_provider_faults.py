"""The provider misbehaves (simulator directives) or the client leaves: what the stream and the
database end up with, on a suite of its own with a 2 s provider read timeout."""

from __future__ import annotations

import time

import pytest

from tests.conftest import BACKENDS
from tests.e2e.sse import Event, Simulator
from tests.faults.conftest import (
    FaultClient,
    assert_invariants,
    assert_terminal_error,
    deltas_text,
    launch_fault_suite,
    only_events,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

READ_TIMEOUT = 2.0


@pytest.fixture(scope="module", params=BACKENDS)
def suite(request, tmp_path_factory):
    return launch_fault_suite(
        tmp_path_factory,
        request,
        request.param,
        "provider-faults",
        PROVIDER_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
    )


@pytest.fixture
def sim(suite) -> Simulator:
    return Simulator(suite.url("simulator"))


@pytest.fixture
def client(suite) -> FaultClient:
    return FaultClient(suite)


def free_used(client: FaultClient) -> int:
    return client.get("/api/usage/free").json()["user"]["used"]


def test_free_provider_fails_before_first_token_gives_the_reservation_back(suite, client):
    thread = client.free_thread()
    items = client.exchange(thread["id"], "Hi [[sim:fail_before]]")
    error = assert_terminal_error(items, "upstream_error")
    assert error["error"]["retryable"] is True
    assert error["message"]["content"] == ""
    assert free_used(client) == 0
    assert client.messages(thread["id"])[-1]["status"] == "failed"
    assert_invariants(suite)


def test_byok_provider_fails_before_first_token_is_an_error_event_and_a_failed_message(suite, client):
    thread, _ = client.byok_thread("openai")
    items = client.exchange(thread["id"], "Hi [[sim:fail_before]]")
    error = assert_terminal_error(items, "upstream_error")
    assert error["error"]["retryable"] is True
    stored = client.messages(thread["id"])
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "failed")]
    assert stored[-1]["content"] == ""
    assert_invariants(suite)


@pytest.mark.parametrize("mode", ["free", "byok"])
def test_provider_fails_mid_stream_keeps_the_partial_text(suite, client, mode):
    thread = client.free_thread() if mode == "free" else client.byok_thread("anthropic")[0]
    items = client.exchange(thread["id"], "Hi [[sim:fail_mid=3]] [[sim:tokens=8]]")
    error = assert_terminal_error(items, "upstream_error")
    partial = deltas_text(items)
    assert partial and error["message"]["content"] == partial
    stored = client.messages(thread["id"])[-1]
    assert stored["status"] == "failed" and stored["content"] == partial
    # A free reply that failed after its first token counts.
    assert free_used(client) == (1 if mode == "free" else 0)
    assert_invariants(suite)


@pytest.mark.parametrize("mode", ["free", "byok"])
def test_provider_hangs_past_the_read_timeout(suite, client, sim, mode):
    if mode == "free":
        thread, api_key = client.free_thread(), suite.env["GROQ_API_KEY"]
    else:
        thread, api_key = client.byok_thread("openai")
    started = time.monotonic()
    items = client.exchange(thread["id"], "Think forever [[sim:hang]]")
    elapsed = time.monotonic() - started
    error = assert_terminal_error(items, "upstream_unavailable")
    assert error["error"]["retryable"] is True and error["message"]["content"] == ""
    names = [item if isinstance(item, str) else item.name for item in items]
    # Pings kept the connection alive while the provider was silent, before the terminal event.
    assert "ping" in names[names.index("message.created") : names.index("error")]
    assert READ_TIMEOUT <= elapsed < READ_TIMEOUT + 8, elapsed
    assert client.messages(thread["id"])[-1]["status"] == "failed"
    assert free_used(client) == 0  # no token arrived: a free reservation is given back
    # chat_service hung up on the provider rather than leaving the request open.
    stream = sim.wait_for_stream_state(api_key, "client_closed", timeout=5)
    assert stream["tokens_sent"] == 0
    assert_invariants(suite)


@pytest.mark.parametrize("mode", ["free", "byok"])
def test_provider_rate_limit_is_upstream_rate_limited_and_retryable(suite, client, mode):
    thread = client.free_thread() if mode == "free" else client.byok_thread("groq")[0]
    items = client.exchange(thread["id"], "Hi [[sim:429]]")
    error = assert_terminal_error(items, "upstream_rate_limited")
    assert error["error"]["retryable"] is True
    assert free_used(client) == 0
    # The failed request is left out of the history; the next send goes through.
    later = only_events(client.exchange(thread["id"], "Hi again"))
    assert later[-1].name == "done"
    assert free_used(client) == (1 if mode == "free" else 0)
    assert_invariants(suite)


@pytest.mark.parametrize("mode", ["free", "byok"])
def test_client_disconnect_closes_the_provider_stream_and_stores_stopped(suite, client, sim, mode):
    if mode == "free":
        thread, api_key = client.free_thread(), suite.env["GROQ_API_KEY"]
    else:
        thread, api_key = client.byok_thread("openai")
    response = client.send(thread["id"], "Long one [[sim:delay=100]] [[sim:tokens=300]]")
    received = []
    for item in client.events(response):
        if isinstance(item, Event) and item.name == "delta":
            received.append(item.data["text"])
            if len(received) == 3:
                break
    left_at = time.time()
    response.close()  # the client leaves mid-stream

    stream = sim.wait_for_stream_state(api_key, "client_closed", timeout=10)
    took = stream["ended_at"] - left_at
    print(f"provider connection closed {took:.2f}s after the client left ({mode})")
    assert took < 3.0, took
    assert stream["tokens_sent"] < 300

    message = client.settled_reply(thread["id"])
    assert message["status"] == "stopped"
    assert message["content"].startswith("".join(received)) and message["content"]
    # A stopped free reply counts.
    assert free_used(client) == (1 if mode == "free" else 0)
    assert_invariants(suite)
