"""Rolling restarts: /readyz on every service, and a SIGTERM to chat drains its open streams."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
import requests

from tests.conftest import BACKENDS
from tests.e2e.conftest import Browserless, launch_suite
from tests.e2e.sse import Event, iter_events

DRAIN_SECONDS = 2.0
SERVICES = ("gateway", "auth", "keys", "chat", "quota")


@pytest.fixture(scope="module", params=BACKENDS)
def drain_suite(request, tmp_path_factory):
    return launch_suite(tmp_path_factory, request, request.param, "drain", DRAIN_SECONDS=str(DRAIN_SECONDS))


def test_every_service_is_ready_and_readiness_follows_a_stopped_dependency(drain_suite):
    for name in SERVICES:
        response = requests.get(drain_suite.url(name) + "/readyz", timeout=5)
        assert response.status_code == 200, (name, response.text)
        checks = response.json()["checks"]
        assert all(value == "ok" for value in checks.values()), (name, checks)
        if name != "gateway":
            assert checks["database"] == "ok"
        if "REDIS_URL" in drain_suite.env:
            assert checks["redis"] == "ok"
    drain_suite.stop("quota")
    try:
        for name in ("gateway", "chat"):
            response = requests.get(drain_suite.url(name) + "/readyz", timeout=10)
            assert response.status_code == 503, name
            assert response.json()["checks"]["quota"] == "down"
        # Alive is not ready: /healthz of the gateway does not depend on quota.
        assert requests.get(drain_suite.url("gateway") + "/healthz", timeout=5).status_code == 200
        assert requests.get(drain_suite.url("keys") + "/readyz", timeout=5).status_code == 200
    finally:
        drain_suite.start("quota")
        drain_suite.wait_healthy(["quota"])


def _open_long_stream(client: Browserless) -> tuple[str, requests.Response]:
    thread = client.post("/api/threads", json={"mode": "free"}).json()["thread"]
    response = client.post(
        f"/api/threads/{thread['id']}/messages",
        json={"content": "[[sim:tokens=300]] [[sim:delay=100]] go", "clientRequestId": uuid.uuid4().hex},
        stream=True,
    )
    assert response.status_code == 200, response.text
    return thread["id"], response


def test_sigterm_to_chat_ends_three_streams_retryably_within_the_drain_time(drain_suite):
    clients = [Browserless(drain_suite) for _ in range(3)]
    streams = []
    for client in clients:
        client.register()
        streams.append(_open_long_stream(client))

    started = threading.Barrier(4)
    outcome: dict[int, tuple[Event | None, float, int]] = {}

    def read(index: int, response: requests.Response) -> None:
        events = iter_events(response)
        deltas = 0
        for event in events:
            if isinstance(event, Event) and event.name == "delta":
                deltas += 1
                if deltas == 1:
                    started.wait(timeout=30)
            if isinstance(event, Event) and event.name in ("error", "done"):
                outcome[index] = (event, time.monotonic(), deltas)
                return
        outcome[index] = (None, time.monotonic(), deltas)

    readers = [
        threading.Thread(target=read, args=(i, response), daemon=True)
        for i, (_, response) in enumerate(streams)
    ]
    for reader in readers:
        reader.start()
    started.wait(timeout=30)
    signalled = time.monotonic()
    os.killpg(drain_suite.processes["chat"].pid, signal.SIGTERM)
    for reader in readers:
        reader.join(timeout=DRAIN_SECONDS + 10)
    drain_suite.processes.pop("chat").wait(timeout=15)

    for index in range(3):
        event, ended, deltas = outcome[index]
        assert event is not None and event.name == "error", (index, event)
        assert event.data["error"]["code"] == "interrupted"
        assert event.data["error"]["retryable"] is True
        assert deltas > 0
        assert ended - signalled <= DRAIN_SECONDS + 2, ended - signalled
    for _, response in streams:
        response.close()

    # Rolling restart: a new chat process takes over and the partial replies are stored as failed.
    drain_suite.start("chat")
    drain_suite.wait_healthy(["chat"])
    for client, (thread_id, _) in zip(clients, streams, strict=True):
        messages = client.get(f"/api/threads/{thread_id}").json()["messages"]
        reply = messages[-1]
        assert reply["role"] == "assistant"
        assert reply["status"] == "failed"
        assert reply["content"]
