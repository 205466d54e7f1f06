"""quota_service pieces that need no database: the clock, UTC day boundaries, the usage shape, the 429."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from quota_service.errors import FreeQuotaExhausted
from quota_service.schemas import FreeUsageSchema
from quota_service.services import BucketUsage, FreeUsage, as_naive_utc, clock, next_utc_midnight
from tests.conftest import make_settings

DAY = date(2026, 11, 27)


def usage(
    user_used: int = 0,
    global_used: int = 0,
    user_limit: int = 50,
    global_limit: int = 1000,
    tokens_used: int = 0,
    token_limit: int = 100_000,
):
    return FreeUsage(
        day=DAY,
        model="moonshotai/kimi-k2-instruct-0905",
        user=BucketUsage(used=user_used, limit=user_limit),
        global_pool=BucketUsage(used=global_used, limit=global_limit),
        tokens=BucketUsage(used=tokens_used, limit=token_limit),
    )


def test_clock_is_the_real_utc_now_without_a_fake_clock_file(tmp_path):
    settings = make_settings(tmp_path / "var")
    before = datetime.now(UTC).replace(tzinfo=None)
    now = clock(settings)
    assert now.tzinfo is None
    assert before <= now <= datetime.now(UTC).replace(tzinfo=None)


def test_clock_is_the_real_utc_now_while_the_fake_clock_file_does_not_exist(tmp_path):
    settings = make_settings(tmp_path / "var", KEYLM_FAKE_CLOCK_FILE=str(tmp_path / "missing"))
    assert abs(clock(settings) - datetime.now(UTC).replace(tzinfo=None)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T23:59:59Z", datetime(2026, 11, 27, 23, 59, 59)),
        ("2026-11-28T00:00:00+00:00\n", datetime(2026, 11, 28)),
        ("2026-11-28T01:30:00+02:00", datetime(2026, 11, 27, 23, 30)),
        ("2026-11-27T08:00:00", datetime(2026, 11, 27, 8)),
    ],
)
def test_clock_reads_the_instant_in_the_fake_clock_file_as_naive_utc(tmp_path, text, expected):
    clock_file = tmp_path / "clock"
    clock_file.write_text(text)
    settings = make_settings(tmp_path / "var", KEYLM_FAKE_CLOCK_FILE=str(clock_file))
    assert clock(settings) == expected


def test_clock_refuses_a_fake_clock_file_that_holds_no_time(tmp_path):
    clock_file = tmp_path / "clock"
    clock_file.write_text("tomorrow-ish")
    settings = make_settings(tmp_path / "var", KEYLM_FAKE_CLOCK_FILE=str(clock_file))
    with pytest.raises(ValueError, match="fake clock file"):
        clock(settings)


def test_as_naive_utc_converts_offsets_and_keeps_naive_times():
    eastern = timezone(timedelta(hours=-5))
    assert as_naive_utc(datetime(2026, 11, 27, 20, 0, tzinfo=eastern)) == datetime(2026, 11, 28, 1, 0)
    assert as_naive_utc(datetime(2026, 11, 27, 20, 0)) == datetime(2026, 11, 27, 20, 0)


@pytest.mark.parametrize(
    ("day", "midnight"),
    [
        (date(2026, 11, 27), datetime(2026, 11, 28)),
        (date(2026, 11, 30), datetime(2026, 12, 1)),
        (date(2026, 12, 31), datetime(2027, 1, 1)),
        (date(2028, 2, 28), datetime(2028, 2, 29)),
    ],
)
def test_next_utc_midnight_is_the_start_of_the_following_day(day, midnight):
    assert next_utc_midnight(day) == midnight


def test_free_quota_exhausted_is_a_retryable_429_naming_the_bucket_and_the_reset():
    error = FreeQuotaExhausted("user", datetime(2026, 11, 28))
    assert error.status == 429
    assert error.to_dict() == {
        "error": {
            "code": "free_quota_exhausted",
            "message": "Daily free requests used up; resets at 00:00 UTC.",
            "retryable": True,
            "details": {"resetsAt": "2026-11-28T00:00:00Z", "bucket": "user"},
        }
    }


def test_usage_snapshot_has_the_shape_of_api_md():
    assert FreeUsageSchema().dump(usage(user_used=2, global_used=7, user_limit=3, global_limit=10)) == {
        "day": "2026-11-27",
        "model": "moonshotai/kimi-k2-instruct-0905",
        "user": {"used": 2, "limit": 3, "remaining": 1},
        "global": {"used": 7, "limit": 10, "remaining": 3},
        "tokens": {"used": 0, "limit": 100_000, "remaining": 100_000},
        "resetsAt": "2026-11-28T00:00:00Z",
        "available": True,
        "showKeyReminder": False,
        "requiresVerifiedEmail": False,
    }


def test_free_use_is_unavailable_once_the_token_budget_is_spent():
    assert usage(tokens_used=99_999).available is True
    snapshot = usage(tokens_used=100_500)
    assert snapshot.tokens.remaining == 0
    assert snapshot.available is False


def test_free_quota_exhausted_by_the_token_budget_says_tokens():
    error = FreeQuotaExhausted("tokens", datetime(2026, 11, 28))
    assert (error.status, error.retryable) == (429, True)
    assert error.message == "Daily free tokens used up; resets at 00:00 UTC."
    assert error.details == {"resetsAt": "2026-11-28T00:00:00Z", "bucket": "tokens"}


def test_remaining_never_goes_below_zero_when_a_limit_was_lowered():
    snapshot = usage(user_used=8, user_limit=5)
    assert snapshot.user.remaining == 0
    assert snapshot.available is False


@pytest.mark.parametrize(
    ("user_used", "global_used", "available"),
    [(0, 0, True), (49, 999, True), (50, 10, False), (10, 1000, False), (50, 1000, False)],
)
def test_free_requests_are_available_only_while_both_buckets_have_room(user_used, global_used, available):
    assert usage(user_used=user_used, global_used=global_used).available is available


@pytest.mark.parametrize(("user_used", "reminder"), [(0, False), (4, False), (5, True), (6, True)])
def test_key_reminder_shows_from_the_fifth_free_request_of_the_day(user_used, reminder):
    assert usage(user_used=user_used).show_key_reminder is reminder
