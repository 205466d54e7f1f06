"""quota_service's functions on a real database (SQLite and Postgres): reserve, release, snapshot."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from quota_service import services
from quota_service.app import create_app
from quota_service.errors import FreeQuotaExhausted
from quota_service.models import GlobalDailyFreeUsage, Reservation, UserDailyFreeUsage
from quota_service.schemas import FreeUsageSchema
from shared.db import db
from shared.errors import NotFound
from tests.integration.conftest import migrated_app

DAY = date(2026, 11, 27)
NOON = datetime(2026, 11, 27, 12, 0)
LAST_MOMENT = datetime(2026, 11, 27, 23, 59, 59, 999999)
MIDNIGHT = datetime(2026, 11, 28, 0, 0)
NEXT_DAY = MIDNIGHT.date()


@pytest.fixture
def open_quota(settings_for):
    """Push an app context on a fresh, migrated quota database with the given limits; returns settings."""
    opened = []

    def open_(user_limit: int = 3, global_limit: int = 100, token_budget: int = 100_000):
        settings = settings_for(
            FREE_USER_DAILY_LIMIT=str(user_limit),
            FREE_GLOBAL_DAILY_LIMIT=str(global_limit),
            FREE_USER_DAILY_TOKENS=str(token_budget),
        )
        context = migrated_app(create_app, settings).app_context()
        context.push()
        opened.append(context)
        return settings

    yield open_
    for context in reversed(opened):
        db.session.remove()
        db.engine.dispose()
        context.pop()


def user_count(user_id: str, day: date = DAY) -> int:
    count = db.session.scalar(
        sa.select(UserDailyFreeUsage.count).where(
            UserDailyFreeUsage.user_id == user_id, UserDailyFreeUsage.day == day
        )
    )
    return count or 0


def global_count(day: date = DAY) -> int:
    return (
        db.session.scalar(sa.select(GlobalDailyFreeUsage.count).where(GlobalDailyFreeUsage.day == day)) or 0
    )


def open_reservations() -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Reservation).where(Reservation.released_at.is_(None))
    )


def reserve(settings, user_id: str, now: datetime = NOON) -> str:
    return services.reserve_free_request(settings, user_id, now)


def refusal(settings, user_id: str, now: datetime = NOON) -> FreeQuotaExhausted:
    with pytest.raises(FreeQuotaExhausted) as refused:
        services.reserve_free_request(settings, user_id, now)
    return refused.value


def test_reserve_takes_one_from_both_buckets(open_quota):
    settings = open_quota()
    reservation_id = reserve(settings, "alice")
    assert uuid.UUID(reservation_id)
    assert (user_count("alice"), global_count()) == (1, 1)

    reserve(settings, "bob")
    assert (user_count("alice"), user_count("bob"), global_count()) == (1, 1, 2)
    reservation = db.session.get(Reservation, reservation_id)
    assert (reservation.user_id, reservation.day, reservation.created_at) == ("alice", DAY, NOON)
    assert reservation.released_at is None


def test_user_bucket_runs_out_while_other_users_still_get_requests(open_quota):
    settings = open_quota(user_limit=3)
    for _ in range(3):
        reserve(settings, "alice")

    refused = refusal(settings, "alice")
    assert (refused.status, refused.code, refused.retryable) == (429, "free_quota_exhausted", True)
    assert refused.details == {"resetsAt": "2026-11-28T00:00:00Z", "bucket": "user"}
    reserve(settings, "bob")
    assert (user_count("alice"), user_count("bob"), global_count()) == (3, 1, 4)


def test_global_bucket_runs_out_for_everyone(open_quota):
    settings = open_quota(user_limit=3, global_limit=4)
    for user_id in ("alice", "alice", "bob", "bob"):
        reserve(settings, user_id)

    assert refusal(settings, "carol").details == {"resetsAt": "2026-11-28T00:00:00Z", "bucket": "global"}
    # alice's own bucket has room, but the pool is empty.
    assert refusal(settings, "alice").details["bucket"] == "global"
    assert global_count() == 4


def test_refusal_by_the_user_bucket_leaves_the_global_bucket_untouched(open_quota):
    settings = open_quota(user_limit=2, global_limit=100)
    reserve(settings, "alice")
    reserve(settings, "alice")

    for _ in range(3):
        refusal(settings, "alice")
    assert (user_count("alice"), global_count(), open_reservations()) == (2, 2, 2)


def test_refusal_by_the_global_bucket_leaves_the_user_bucket_untouched(open_quota):
    settings = open_quota(user_limit=5, global_limit=2)
    reserve(settings, "alice")
    reserve(settings, "bob")

    refusal(settings, "alice")
    refusal(settings, "carol")
    assert (user_count("alice"), user_count("bob"), user_count("carol")) == (1, 1, 0)
    assert (global_count(), open_reservations()) == (2, 2)


def test_both_buckets_come_back_at_utc_midnight(open_quota):
    settings = open_quota(user_limit=1, global_limit=2)
    reserve(settings, "alice", LAST_MOMENT)
    reserve(settings, "bob", LAST_MOMENT)
    assert refusal(settings, "alice", LAST_MOMENT).details["resetsAt"] == "2026-11-28T00:00:00Z"
    assert refusal(settings, "carol", LAST_MOMENT).details["bucket"] == "global"

    reserve(settings, "alice", MIDNIGHT)
    reserve(settings, "carol", MIDNIGHT)
    assert (user_count("alice", NEXT_DAY), global_count(NEXT_DAY)) == (1, 2)
    assert (user_count("alice", DAY), global_count(DAY)) == (1, 2)  # yesterday is history
    assert refusal(settings, "alice", MIDNIGHT).details["resetsAt"] == "2026-11-29T00:00:00Z"


def test_a_time_with_an_offset_counts_on_its_utc_day(open_quota):
    settings = open_quota()
    evening_in_new_york = datetime(2026, 11, 27, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    reserve(settings, "alice", evening_in_new_york)
    assert (user_count("alice", DAY), user_count("alice", NEXT_DAY)) == (0, 1)


def test_release_gives_one_back_to_both_buckets_exactly_once(open_quota):
    settings = open_quota()
    first = reserve(settings, "alice")
    reserve(settings, "alice")

    assert services.release_free_request(settings, first, "alice", now=NOON) is True
    assert (user_count("alice"), global_count()) == (1, 1)
    assert db.session.get(Reservation, first).released_at == NOON

    assert services.release_free_request(settings, first, "alice", now=NOON) is False
    assert (user_count("alice"), global_count()) == (1, 1)


def test_release_makes_room_for_another_request(open_quota):
    settings = open_quota(user_limit=1)
    reservation_id = reserve(settings, "alice")
    refusal(settings, "alice")

    services.release_free_request(settings, reservation_id, "alice")
    reserve(settings, "alice")
    assert (user_count("alice"), global_count(), open_reservations()) == (1, 1, 1)


@pytest.mark.parametrize("reservation_of", ["another user", "nobody"])
def test_release_of_a_reservation_that_is_not_the_users_is_not_found(open_quota, reservation_of):
    settings = open_quota()
    alices = reserve(settings, "alice")
    reservation_id = alices if reservation_of == "another user" else str(uuid.uuid4())

    with pytest.raises(NotFound):
        services.release_free_request(settings, reservation_id, "bob")
    assert (user_count("alice"), global_count(), open_reservations()) == (1, 1, 1)


def test_release_after_midnight_gives_back_to_the_day_of_the_reservation(open_quota):
    settings = open_quota()
    yesterdays = reserve(settings, "alice", LAST_MOMENT)
    reserve(settings, "alice", MIDNIGHT)

    services.release_free_request(settings, yesterdays, "alice", now=MIDNIGHT)
    assert (user_count("alice", DAY), global_count(DAY)) == (0, 0)
    assert (user_count("alice", NEXT_DAY), global_count(NEXT_DAY)) == (1, 1)


def test_key_reminder_is_off_at_four_free_requests_and_on_at_five(open_quota):
    settings = open_quota(user_limit=10)
    for _ in range(4):
        reserve(settings, "alice")
    assert services.free_usage_snapshot(settings, "alice", NOON).show_key_reminder is False

    reserve(settings, "alice")
    assert services.free_usage_snapshot(settings, "alice", NOON).show_key_reminder is True
    assert services.free_usage_snapshot(settings, "bob", NOON).show_key_reminder is False


def test_snapshot_reports_each_buckets_used_limit_and_remaining(open_quota):
    settings = open_quota(user_limit=3, global_limit=5)
    reserve(settings, "alice")
    reserve(settings, "alice")
    reserve(settings, "bob")

    assert FreeUsageSchema().dump(services.free_usage_snapshot(settings, "alice", NOON)) == {
        "day": "2026-11-27",
        "model": settings.groq_free_model,
        "user": {"used": 2, "limit": 3, "remaining": 1},
        "global": {"used": 3, "limit": 5, "remaining": 2},
        "tokens": {"used": 0, "limit": 100_000, "remaining": 100_000},
        "resetsAt": "2026-11-28T00:00:00Z",
        "available": True,
        "showKeyReminder": False,
        "requiresVerifiedEmail": False,
    }
    reserve(settings, "alice")
    assert services.free_usage_snapshot(settings, "alice", NOON).available is False
    assert services.free_usage_snapshot(settings, "carol", NOON).available is True


def test_snapshot_of_a_new_day_starts_at_zero(open_quota):
    settings = open_quota(user_limit=3, global_limit=5)
    reserve(settings, "alice", LAST_MOMENT)

    fresh = services.free_usage_snapshot(settings, "alice", MIDNIGHT)
    assert (fresh.day, fresh.user.used, fresh.global_pool.used) == (NEXT_DAY, 0, 0)
    assert (fresh.user.remaining, fresh.global_pool.remaining, fresh.available) == (3, 5, True)


def test_each_decision_is_counted_in_the_metrics(open_quota):
    settings = open_quota(user_limit=1)

    def decisions(outcome: str) -> float:
        return REGISTRY.get_sample_value("keylm_quota_decisions_total", {"outcome": outcome}) or 0.0

    granted, refused = decisions("granted"), decisions("refused")
    reserve(settings, "alice")
    refusal(settings, "alice")
    refusal(settings, "alice")
    assert (decisions("granted") - granted, decisions("refused") - refused) == (1, 2)


# --- the daily token budget ---------------------------------------------------------------------


def user_tokens(user_id: str, day: date = DAY) -> int:
    tokens = db.session.scalar(
        sa.select(UserDailyFreeUsage.tokens).where(
            UserDailyFreeUsage.user_id == user_id, UserDailyFreeUsage.day == day
        )
    )
    return tokens or 0


def test_reserve_takes_its_estimate_from_the_users_token_budget(open_quota):
    settings = open_quota(token_budget=1000)
    reservation_id = services.reserve_free_request(settings, "alice", NOON, 400)

    assert user_tokens("alice") == 400
    assert db.session.get(Reservation, reservation_id).estimated_tokens == 400
    assert services.free_usage_snapshot(settings, "alice", NOON).tokens.remaining == 600


def test_an_estimate_that_does_not_fit_is_refused_and_takes_neither_a_request_nor_tokens(open_quota):
    settings = open_quota(user_limit=10, token_budget=1000)
    services.reserve_free_request(settings, "alice", NOON, 800)

    with pytest.raises(FreeQuotaExhausted) as refused:
        services.reserve_free_request(settings, "alice", NOON, 201)
    assert refused.value.details["bucket"] == "tokens"
    assert (user_count("alice"), global_count(), user_tokens("alice"), open_reservations()) == (1, 1, 800, 1)
    services.reserve_free_request(settings, "alice", NOON, 200)
    assert user_tokens("alice") == 1000


def test_an_estimate_over_the_whole_budget_is_refused_at_once(open_quota):
    settings = open_quota(token_budget=1000)
    with pytest.raises(FreeQuotaExhausted) as refused:
        services.reserve_free_request(settings, "alice", NOON, 1001)
    assert refused.value.details["bucket"] == "tokens"
    assert (user_count("alice"), global_count(), user_tokens("alice")) == (0, 0, 0)


def test_settle_replaces_the_estimate_by_the_used_tokens_once(open_quota):
    settings = open_quota(token_budget=1000)
    reservation_id = services.reserve_free_request(settings, "alice", NOON, 600)
    services.reserve_free_request(settings, "alice", NOON, 100)

    assert services.settle_free_request(settings, reservation_id, "alice", 250) is True
    assert user_tokens("alice") == 350
    assert services.settle_free_request(settings, reservation_id, "alice", 999) is False
    assert user_tokens("alice") == 350
    assert db.session.get(Reservation, reservation_id).settled_tokens == 250


def test_settle_may_pass_the_budget_and_then_the_next_request_is_refused(open_quota):
    settings = open_quota(token_budget=1000)
    reservation_id = services.reserve_free_request(settings, "alice", NOON, 500)

    services.settle_free_request(settings, reservation_id, "alice", 1200)
    assert user_tokens("alice") == 1200
    with pytest.raises(FreeQuotaExhausted) as refused:
        services.reserve_free_request(settings, "alice", NOON, 0)
    assert refused.value.details["bucket"] == "tokens"
    assert services.free_usage_snapshot(settings, "alice", NOON).available is False


def test_release_gives_back_the_estimate_or_the_settled_tokens(open_quota):
    settings = open_quota(token_budget=1000)
    unsettled = services.reserve_free_request(settings, "alice", NOON, 300)
    settled = services.reserve_free_request(settings, "alice", NOON, 400)
    services.settle_free_request(settings, settled, "alice", 100)
    assert user_tokens("alice") == 400

    services.release_free_request(settings, unsettled, "alice", now=NOON)
    assert user_tokens("alice") == 100
    services.release_free_request(settings, settled, "alice", now=NOON)
    assert (user_tokens("alice"), user_count("alice")) == (0, 0)


def test_a_released_reservation_is_not_settled(open_quota):
    settings = open_quota(token_budget=1000)
    reservation_id = services.reserve_free_request(settings, "alice", NOON, 300)
    services.release_free_request(settings, reservation_id, "alice", now=NOON)

    assert services.settle_free_request(settings, reservation_id, "alice", 50) is False
    assert user_tokens("alice") == 0


def test_settle_of_another_users_reservation_is_not_found(open_quota):
    settings = open_quota(token_budget=1000)
    reservation_id = services.reserve_free_request(settings, "alice", NOON, 300)

    with pytest.raises(NotFound):
        services.settle_free_request(settings, reservation_id, "bob", 10)
    with pytest.raises(NotFound):
        services.settle_free_request(settings, str(uuid.uuid4()), "alice", 10)
    assert user_tokens("alice") == 300


def test_settle_of_yesterdays_reservation_charges_yesterday(open_quota):
    settings = open_quota(token_budget=1000)
    yesterdays = services.reserve_free_request(settings, "alice", LAST_MOMENT, 500)
    services.reserve_free_request(settings, "alice", MIDNIGHT, 500)

    services.settle_free_request(settings, yesterdays, "alice", 20)
    assert (user_tokens("alice", DAY), user_tokens("alice", NEXT_DAY)) == (20, 500)
