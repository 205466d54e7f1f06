"""A Redis that accepts connections but never answers (issue 10): requests are not held for long,
limits move to memory, and /api/healthz and the metrics say so."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from runner.suite import Suite, free_port
from tests.conftest import BACKENDS, unique_email
from tests.e2e.conftest import Browserless, launch_suite

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def silent_redis():
    """A listening socket nobody ever reads from: connects succeed, every command waits forever."""
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(256)
    yield f"redis://127.0.0.1:{port}/0"
    listener.close()


@pytest.fixture(scope="module", params=BACKENDS)
def stalled_suite(request, tmp_path_factory, silent_redis) -> Suite:
    database = {}
    if request.param == "postgres":
        database["DATABASE_URL"] = request.getfixturevalue("new_postgres_database")()
    # Started as "sqlite" so that launch_suite keeps our REDIS_URL; the database is chosen above.
    return launch_suite(
        tmp_path_factory,
        request,
        "sqlite",
        f"stalled-redis-{request.param}",
        REDIS_URL=silent_redis,
        REDIS_CONNECT_TIMEOUT_SECONDS="0.3",
        REDIS_SOCKET_TIMEOUT_SECONDS="0.3",
        **database,
    )


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_logins_and_health_are_not_held_by_a_silent_redis(stalled_suite):
    client = Browserless(stalled_suite)
    email = client.register()["email"]

    logins = [
        timed(
            lambda: client.post("/api/auth/login", json={"email": email, "password": "correct horse battery"})
        )
        for _ in range(3)
    ]
    health, health_took = timed(lambda: client.get("/api/healthz"))

    assert [r.status_code for r, _ in logins] == [200, 200, 200]
    assert max(took for _, took in logins) < 3  # was 10 s without socket timeouts
    assert health_took < 3
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["rateLimits"] == "memory-fallback"
    assert set(health.json()["services"].values()) == {"ok"}


def test_limits_still_hold_in_memory_while_redis_is_silent(stalled_suite):
    client = Browserless(stalled_suite)
    email = client.register()["email"]
    answers = [
        client.post("/api/auth/login", json={"email": email, "password": f"wrong {i}"}) for i in range(6)
    ]

    assert [r.status_code for r in answers] == [401] * 5 + [429]


def test_the_fallback_is_counted_in_the_gateway_metrics(stalled_suite, metrics_text):
    Browserless(stalled_suite).get("/api/auth/me")

    text = metrics_text(stalled_suite, "gateway")

    assert 'keylm_rate_limits_in_memory_fallback{service="gateway"} 1.0' in text
    [counted] = [
        line
        for line in text.splitlines()
        if line.startswith('keylm_rate_limit_fallback_requests_total{service="gateway"}')
    ]
    assert float(counted.rsplit(" ", 1)[1]) > 0


def test_a_reset_request_is_answered_while_redis_is_silent(stalled_suite):
    response, took = timed(
        lambda: Browserless(stalled_suite).post(
            "/api/auth/password-reset/request", json={"email": unique_email()}
        )
    )

    assert response.status_code == 202
    assert took < 3


@pytest.fixture
def metrics_text():
    def read(suite: Suite, service: str) -> str:
        return requests.get(suite.metrics_url(service), timeout=10).text

    return read
