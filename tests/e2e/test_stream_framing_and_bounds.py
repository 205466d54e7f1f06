"""Streams whatever the provider's framing, one keep-alive per interval, and the bounds on a reply:
STREAM_MAX_SECONDS and MAX_STREAMS_PER_USER.

A body may end by chunks, by Content-Length, or by the server closing the connection; the
simulator answers each way on `[[sim:framing=...]]`. Whatever the framing, each delta must reach
the client as the provider sends it (a relay that reads to the body's end delivers them all at
once, at the end), and a client that leaves must close the provider request.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import BACKENDS
from tests.e2e.conftest import Browserless, launch_suite
from tests.e2e.sse import BYOK_MODELS, Event, Simulator, iter_events, read_events, send
from tests.e2e.test_chat_stream import byok_thread, free_thread

pytestmark = pytest.mark.e2e

FRAMINGS = ("chunked", "close", "length")


@pytest.fixture
def sim(suite) -> Simulator:
    return Simulator(suite.url("simulator"))


def wait_for_status(client: Browserless, thread_id: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = client.get(f"/api/threads/{thread_id}").json()["messages"][-1]
        if message["status"] != "streaming" or time.monotonic() > deadline:
            return message
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("provider", list(BYOK_MODELS))
def test_every_framing_reaches_the_client_delta_by_delta(signed_in, provider, framing):
    thread, _ = byok_thread(signed_in, provider)
    started = time.monotonic()
    response = send(
        signed_in, thread["id"], f"go [[sim:framing={framing}]] [[sim:tokens=10]] [[sim:delay=120]]"
    )
    arrivals, last = [], None
    for event in iter_events(response):
        if isinstance(event, Event):
            last = event
            if event.name == "delta":
                arrivals.append(time.monotonic() - started)
    assert last is not None and last.name == "done", last
    assert len(arrivals) >= 8
    # The provider spends 10 x 120 ms = 1.2 s on this reply. Relayed as it comes, the first delta
    # arrives well before the last is sent and the deltas spread over that time.
    assert arrivals[0] < 1.0, arrivals
    assert arrivals[-1] - arrivals[0] > 0.7, arrivals


@pytest.mark.slow
@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize("provider", list(BYOK_MODELS))
def test_stop_closes_the_provider_request_whatever_its_framing(signed_in, sim, provider, framing):
    thread, api_key = byok_thread(signed_in, provider)
    response = send(
        signed_in, thread["id"], f"go [[sim:framing={framing}]] [[sim:tokens=300]] [[sim:delay=100]]"
    )
    deltas = 0
    for event in iter_events(response):
        if isinstance(event, Event) and event.name == "delta":
            deltas += 1
            if deltas == 2:
                break
    response.close()  # the client leaves; the reply would have run 30 s
    stream = sim.wait_for_stream_state(api_key, "client_closed", timeout=3)
    assert stream["tokens_sent"] < 100
    message = wait_for_status(signed_in, thread["id"])
    assert message["status"] == "stopped"
    assert message["content"]


def test_one_keep_alive_per_interval_reaches_the_client(signed_in):
    """SSE_IDLE_PING_SECONDS is 0.5: while the provider is silent for 3 s, about six pings, not
    one from chat and another from the gateway in each half second."""
    thread, _ = byok_thread(signed_in, "openai")
    response = send(signed_in, thread["id"], "think [[sim:hang_before=3000]] [[sim:tokens=2]]")
    kinds = [e if isinstance(e, str) else e.name for e in iter_events(response)]
    assert kinds[-1] == "done"
    pings = kinds[: kinds.index("delta")].count("ping")
    assert 3 <= pings <= 8, kinds


# --- the bounds ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def bounded_suite(request, tmp_path_factory):
    return launch_suite(
        tmp_path_factory, request, request.param, "bounded", STREAM_MAX_SECONDS="2", MAX_STREAMS_PER_USER="2"
    )


@pytest.fixture
def bounded(bounded_suite) -> Browserless:
    client = Browserless(bounded_suite)
    client.register()
    return client


def test_a_reply_past_stream_max_seconds_ends_with_upstream_timeout_keeping_the_part(bounded):
    thread, _ = byok_thread(bounded, "openai")
    response = send(bounded, thread["id"], "long [[sim:tokens=100]] [[sim:delay=100]]")
    events = read_events(response)
    assert [e.name for e in events].count("delta") >= 3
    error = events[-1]
    assert error.name == "error"
    assert error.data["error"]["code"] == "upstream_timeout"
    assert error.data["error"]["retryable"] is True
    assert error.data["message"]["status"] == "failed"
    assert error.data["message"]["content"]
    stored = wait_for_status(bounded, thread["id"])
    assert stored["status"] == "failed"
    assert stored["content"] == error.data["message"]["content"]


def test_a_silent_provider_is_cut_at_stream_max_seconds_too(bounded):
    thread = free_thread(bounded)
    started = time.monotonic()
    events = read_events(send(bounded, thread["id"], "think [[sim:hang_before=30000]]"))
    assert events[-1].name == "error"
    assert events[-1].data["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 15  # not the 30 s the provider would have stayed silent


def test_streams_beyond_max_streams_per_user_get_429_with_retry_after(bounded):
    thread, _ = byok_thread(bounded, "openai")
    open_streams = []
    for _ in range(2):
        stream = send(bounded, thread["id"], "hold [[sim:hang_before=1500]] [[sim:tokens=1]]")
        assert stream.status_code == 200
        open_streams.append(stream)
    refused = send(bounded, thread["id"], "one more", request_id=uuid.uuid4().hex)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    for stream in open_streams:
        assert read_events(stream)[-1].name == "done"
    # Once they have finished, the user may stream again.
    assert read_events(send(bounded, thread["id"], "now [[sim:tokens=2]]"))[-1].name == "done"
