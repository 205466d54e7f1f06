"""KeyLM Free quotas end to end, on a suite with small limits and an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.e2e.conftest import Browserless, launch_suite
from tests.e2e.sse import read_events, send

pytestmark = pytest.mark.e2e

USER_LIMIT = 6
GLOBAL_LIMIT = 10


@pytest.fixture(scope="module", params=BACKENDS)
def quota_suite(request, tmp_path_factory):
    clock_file = tmp_path_factory.mktemp("clock") / "now"
    clock_file.write_text("2026-11-27T23:58:00Z")
    suite = launch_suite(
        tmp_path_factory,
        request,
        request.param,
        "quota",
        FREE_USER_DAILY_LIMIT=str(USER_LIMIT),
        FREE_GLOBAL_DAILY_LIMIT=str(GLOBAL_LIMIT),
        KEYLM_FAKE_CLOCK_FILE=str(clock_file),
    )
    suite.clock_file = clock_file
    return suite


def set_clock(path: Path, moment: datetime) -> None:
    path.write_text(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def free_send(client: Browserless, thread_id: str):
    return send(client, thread_id, "Hi [[sim:tokens=2]]")


def new_free_user(suite) -> tuple[Browserless, str]:
    client = Browserless(suite)
    client.register()
    thread = client.post("/api/threads", json={"mode": "free"}).json()["thread"]
    return client, thread["id"]


def test_buckets_run_out_with_reset_time_and_come_back_after_utc_midnight(quota_suite):
    alice, alice_thread = new_free_user(quota_suite)
    for count in range(1, USER_LIMIT + 1):
        assert read_events(free_send(alice, alice_thread))[-1].name == "done"
        usage = alice.get("/api/usage/free").json()
        assert usage["user"]["used"] == count
        # The reminder to bring a key appears with the fifth free request of the day.
        assert usage["showKeyReminder"] is (count >= 5)

    refused = free_send(alice, alice_thread)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "free_quota_exhausted" and error["retryable"] is True
    assert error["details"]["resetsAt"] == "2026-11-28T00:00:00Z"
    usage = alice.get("/api/usage/free").json()
    assert usage["available"] is False and usage["user"]["remaining"] == 0

    # Another user still has room in the global bucket, until it runs out for everyone.
    bob, bob_thread = new_free_user(quota_suite)
    for _ in range(GLOBAL_LIMIT - USER_LIMIT):
        assert read_events(free_send(bob, bob_thread))[-1].name == "done"
    refused = free_send(bob, bob_thread)
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["resetsAt"] == "2026-11-28T00:00:00Z"
    assert bob.get("/api/usage/free").json()["global"]["remaining"] == 0

    # A new UTC day: both buckets are back.
    set_clock(quota_suite.clock_file, datetime(2026, 11, 28, 0, 0, 5, tzinfo=UTC))
    try:
        assert read_events(free_send(alice, alice_thread))[-1].name == "done"
        assert read_events(free_send(bob, bob_thread))[-1].name == "done"
        usage = alice.get("/api/usage/free").json()
        assert usage["day"] == "2026-11-28" and usage["user"]["used"] == 1
        assert usage["global"]["used"] == 2 and usage["showKeyReminder"] is False
    finally:
        set_clock(quota_suite.clock_file, datetime(2026, 11, 27, 23, 58, tzinfo=UTC) + timedelta(days=3))
