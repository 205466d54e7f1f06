"""quota_service over HTTP (SQLite and Postgres): usage snapshot, chat_service's reserve/release, errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quota_service.app import create_app
from shared.db import db
from tests.integration.conftest import ServiceCaller, migrated_app

NOON = "2026-11-27T12:00:00Z"
EXHAUSTED_MESSAGE = "Daily free requests used up; resets at 00:00 UTC."
USAGE = "/api/usage/free"
RESERVE = "/internal/free/reserve"
RELEASE = "/internal/free/release"
SETTLE = "/internal/free/settle"


def set_clock(clock_file: Path, instant: str) -> None:
    """Move the service's fake clock; written atomically, as a real test harness must."""
    partial = clock_file.with_suffix(".partial")
    partial.write_text(instant)
    os.replace(partial, clock_file)


@dataclass
class QuotaService:
    """The app under test, called as the gateway or as chat_service, with its fake clock file."""

    caller: ServiceCaller
    clock_file: Path

    def usage(self, user_id: str):
        return self.caller.get(USAGE, user_id=user_id)

    def reserve(self, user_id: str, estimated_tokens: int | None = None):
        body = {} if estimated_tokens is None else {"estimatedTokens": estimated_tokens}
        return self.caller.post(RESERVE, user_id=user_id, caller="chat", json=body)

    def settle(self, user_id: str, reservation_id: str, used_tokens: int):
        return self.caller.post(
            SETTLE,
            user_id=user_id,
            caller="chat",
            json={"reservationId": reservation_id, "usedTokens": used_tokens},
        )

    def release(self, user_id: str, reservation_id: str):
        return self.caller.post(
            RELEASE, user_id=user_id, caller="chat", json={"reservationId": reservation_id}
        )


@pytest.fixture
def quota(settings_for, tmp_path):
    """quota_service with user limit 3, global limit 5 and 1000 tokens a user; its clock reads
    tmp_path/clock (at noon)."""
    clock_file = tmp_path / "clock"
    set_clock(clock_file, NOON)
    settings = settings_for(
        FREE_USER_DAILY_LIMIT="3",
        FREE_GLOBAL_DAILY_LIMIT="5",
        FREE_USER_DAILY_TOKENS="1000",
        KEYLM_FAKE_CLOCK_FILE=str(clock_file),
    )
    app = migrated_app(create_app, settings)
    yield QuotaService(ServiceCaller(app, "quota"), clock_file)
    with app.app_context():
        db.engine.dispose()


def snapshot(user_used=0, global_used=0, day="2026-11-27", resets_at="2026-11-28T00:00:00Z", tokens_used=0):
    """The expected body of GET /api/usage/free with limits 3 (user), 5 (global) and 1000 tokens."""
    return {
        "day": day,
        "model": "moonshotai/kimi-k2-instruct-0905",
        "user": {"used": user_used, "limit": 3, "remaining": 3 - user_used},
        "global": {"used": global_used, "limit": 5, "remaining": 5 - global_used},
        "tokens": {"used": tokens_used, "limit": 1000, "remaining": max(0, 1000 - tokens_used)},
        "resetsAt": resets_at,
        "available": user_used < 3 and global_used < 5 and tokens_used < 1000,
        "showKeyReminder": user_used >= 5,
        "requiresVerifiedEmail": False,
    }


def exhausted(bucket: str, resets_at: str = "2026-11-28T00:00:00Z") -> dict:
    details = {"resetsAt": resets_at, "bucket": bucket}
    return {
        "error": {
            "code": "free_quota_exhausted",
            "message": EXHAUSTED_MESSAGE,
            "retryable": True,
            "details": details,
        }
    }


def test_free_usage_is_the_users_snapshot_for_today(quota):
    response = quota.usage("alice")
    assert response.status_code == 200
    assert response.get_json() == snapshot()


def test_free_usage_needs_a_user(quota):
    response = quota.caller.get(USAGE)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"


def test_reserve_answers_a_reservation_id_and_the_new_usage(quota):
    response = quota.reserve("alice")

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"reservationId", "usage"}
    assert isinstance(body["reservationId"], str) and body["reservationId"]
    assert body["usage"] == snapshot(user_used=1, global_used=1)
    assert quota.usage("alice").get_json() == snapshot(user_used=1, global_used=1)
    assert quota.usage("bob").get_json() == snapshot(user_used=0, global_used=1)


def test_reserve_past_the_user_limit_is_429_free_quota_exhausted(quota):
    for _ in range(3):
        assert quota.reserve("alice").status_code == 200

    response = quota.reserve("alice")
    assert response.status_code == 429
    assert response.get_json() == exhausted("user")
    assert quota.reserve("bob").status_code == 200


def test_reserve_past_the_global_limit_is_429_for_everyone(quota):
    for user_id in ("alice", "alice", "bob", "bob", "carol"):
        assert quota.reserve(user_id).status_code == 200

    for user_id in ("carol", "dave"):
        response = quota.reserve(user_id)
        assert response.status_code == 429
        assert response.get_json() == exhausted("global")
    assert quota.usage("dave").get_json() == snapshot(user_used=0, global_used=5)


def test_release_gives_a_reservation_back_once(quota):
    reservation_id = quota.reserve("alice").get_json()["reservationId"]
    quota.reserve("alice")

    first = quota.release("alice", reservation_id)
    assert first.status_code == 200
    assert first.get_json() == {"released": True, "usage": snapshot(user_used=1, global_used=1)}
    second = quota.release("alice", reservation_id)
    assert second.status_code == 200
    assert second.get_json() == {"released": False, "usage": snapshot(user_used=1, global_used=1)}


@pytest.mark.parametrize("reservation_of", ["another user", "nobody"])
def test_release_of_a_reservation_that_is_not_the_users_is_404(quota, reservation_of):
    alices = quota.reserve("alice").get_json()["reservationId"]
    reservation_id = alices if reservation_of == "another user" else "f" * 36

    response = quota.release("bob", reservation_id)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert quota.usage("alice").get_json() == snapshot(user_used=1, global_used=1)


@pytest.mark.parametrize("path", [RESERVE, RELEASE, SETTLE])
@pytest.mark.parametrize("caller", ["gateway", "auth", "keys", "quota"])
def test_internal_endpoints_refuse_callers_other_than_chat(quota, path, caller):
    reservation_id = quota.reserve("alice").get_json()["reservationId"]

    body = (
        {"reservationId": reservation_id, "usedTokens": 5}
        if path == SETTLE
        else {"reservationId": reservation_id}
    )
    response = quota.caller.post(path, user_id="alice", caller=caller, json=body)
    if caller == "gateway":  # a caller quota accepts, but not here
        assert response.status_code == 403
        assert response.get_json()["error"] == {
            "code": "forbidden",
            "message": "You are not allowed to do that.",
            "retryable": False,
        }
    else:  # no caller of quota at all: its own signed credential is refused before any route
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthenticated"
    assert quota.usage("alice").get_json() == snapshot(user_used=1, global_used=1)


@pytest.mark.parametrize("path", [USAGE, RESERVE, RELEASE, SETTLE])
def test_every_endpoint_refuses_a_request_without_an_internal_credential(quota, path):
    response = quota.caller.client.open(path, method="GET" if path == USAGE else "POST")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("path", [RESERVE, RELEASE, SETTLE])
def test_internal_endpoints_need_a_user(quota, path):
    response = quota.caller.post(path, caller="chat", json={"reservationId": "x"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        ({}, 400, "validation_error"),
        ({"json": {}}, 400, "validation_error"),
        ({"json": {"reservationId": 123}}, 400, "validation_error"),
        ({"json": {"reservationId": ""}}, 400, "validation_error"),
        ({"json": {"reservationId": "r" * 65}}, 400, "validation_error"),
        ({"json": {"reservationId": "r", "userId": "bob"}}, 400, "validation_error"),
        ({"json": ["reservationId"]}, 400, "invalid_json"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
    ],
)
def test_release_with_bad_input_is_a_4xx_envelope(quota, request_kwargs, status, code):
    response = quota.caller.post(RELEASE, user_id="alice", caller="chat", **request_kwargs)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert (error["code"], error["retryable"]) == (code, False)
    if code == "validation_error":
        assert set(error["details"]["fields"]) <= {"reservationId", "userId"}


@pytest.mark.parametrize(("method", "path"), [("GET", RESERVE), ("GET", RELEASE), ("POST", USAGE)])
def test_wrong_method_is_a_405_envelope(quota, method, path):
    response = quota.caller.open(method, path, user_id="alice", caller="chat")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_the_fake_clock_file_decides_the_day(quota):
    set_clock(quota.clock_file, "2026-11-27T23:59:30Z")
    for _ in range(3):
        quota.reserve("alice")
    assert quota.reserve("alice").get_json() == exhausted("user")

    set_clock(quota.clock_file, "2026-11-28T00:00:05Z")
    next_day = {"day": "2026-11-28", "resets_at": "2026-11-29T00:00:00Z"}
    assert quota.usage("alice").get_json() == snapshot(**next_day)
    assert quota.reserve("alice").get_json()["usage"] == snapshot(user_used=1, global_used=1, **next_day)


def test_without_the_fake_clock_file_the_day_is_todays_utc_date(quota):
    quota.clock_file.unlink()
    before = datetime.now(UTC).date().isoformat()
    day = quota.usage("alice").get_json()["day"]
    assert day in {before, datetime.now(UTC).date().isoformat()}


# --- the daily token budget ---------------------------------------------------------------------


def test_reserve_takes_the_estimated_tokens_and_settle_replaces_them_by_the_used_ones(quota):
    reservation_id = quota.reserve("alice", estimated_tokens=600).get_json()["reservationId"]
    assert quota.usage("alice").get_json() == snapshot(user_used=1, global_used=1, tokens_used=600)

    settled = quota.settle("alice", reservation_id, 150)
    assert settled.status_code == 200
    assert settled.get_json() == {
        "settled": True,
        "usage": snapshot(user_used=1, global_used=1, tokens_used=150),
    }
    again = quota.settle("alice", reservation_id, 900)
    assert again.get_json() == {
        "settled": False,
        "usage": snapshot(user_used=1, global_used=1, tokens_used=150),
    }


def test_reserve_whose_estimate_does_not_fit_the_token_budget_is_429_and_takes_nothing(quota):
    assert quota.reserve("alice", estimated_tokens=700).status_code == 200

    response = quota.reserve("alice", estimated_tokens=301)
    assert response.status_code == 429
    body = response.get_json()
    assert body["error"]["details"] == {"resetsAt": "2026-11-28T00:00:00Z", "bucket": "tokens"}
    assert body["error"]["message"] == "Daily free tokens used up; resets at 00:00 UTC."
    assert quota.usage("alice").get_json() == snapshot(user_used=1, global_used=1, tokens_used=700)
    assert quota.reserve("alice", estimated_tokens=300).status_code == 200
    assert quota.reserve("bob", estimated_tokens=1000).status_code == 200


def test_settle_of_a_reservation_that_is_not_the_users_is_404(quota):
    alices = quota.reserve("alice", estimated_tokens=100).get_json()["reservationId"]

    for user_id, reservation_id in (("bob", alices), ("alice", "f" * 36)):
        response = quota.settle(user_id, reservation_id, 1)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    assert quota.usage("alice").get_json() == snapshot(user_used=1, global_used=1, tokens_used=100)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reservationId": "r"},
        {"reservationId": "r", "usedTokens": -1},
        {"reservationId": "r", "usedTokens": 1.5},
        {"reservationId": "r", "usedTokens": "10"},
        {"reservationId": "r", "usedTokens": 10, "userId": "bob"},
    ],
)
def test_settle_with_bad_input_is_a_validation_error(quota, body):
    response = quota.caller.post(SETTLE, user_id="alice", caller="chat", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("estimate", [-1, 1.5, "10", None])
def test_reserve_with_a_bad_estimate_is_a_validation_error_and_takes_nothing(quota, estimate):
    response = quota.caller.post(RESERVE, user_id="alice", caller="chat", json={"estimatedTokens": estimate})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert quota.usage("alice").get_json() == snapshot()
