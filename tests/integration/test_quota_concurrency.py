"""Concurrent reservations on a real database: exact counts under 200 simultaneous callers.

Each call runs in its own thread inside its own app context, so it has its own session and database
connection (up to the pool's 30 on Postgres; SQLite's writers queue on its lock); a barrier releases
them together. The service keeps no state in the process, so replicas add connections, not new cases.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime

import pytest
import sqlalchemy as sa

from quota_service import services
from quota_service.app import create_app
from quota_service.errors import FreeQuotaExhausted
from quota_service.models import GlobalDailyFreeUsage, Reservation, UserDailyFreeUsage
from shared.db import db
from tests.integration.conftest import migrated_app

DAY = date(2026, 11, 27)
NOON = datetime(2026, 11, 27, 12, 0)
CALLERS = 200
BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)


@pytest.fixture
def quota_app(settings_for):
    """A quota app on a fresh database with the given limits (its connections are closed after)."""
    apps = []

    def start(user_limit: int, global_limit: int, token_budget: int = 100_000):
        settings = settings_for(
            FREE_USER_DAILY_LIMIT=str(user_limit),
            FREE_GLOBAL_DAILY_LIMIT=str(global_limit),
            FREE_USER_DAILY_TOKENS=str(token_budget),
        )
        apps.append(migrated_app(create_app, settings))
        return settings, apps[-1]

    yield start
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def run_at_once(app, calls: list[Callable[[], object]]) -> list[object]:
    """Run every call in its own thread and app context, all released together; results in order."""
    barrier = threading.Barrier(len(calls))

    def run(index: int):
        with app.app_context():
            barrier.wait(timeout=60)
            return calls[index]()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, range(len(calls))))


def reserve_or_refusal(settings, user_id: str) -> Callable[[], str | FreeQuotaExhausted]:
    def call():
        try:
            return services.reserve_free_request(settings, user_id, NOON)
        except FreeQuotaExhausted as refused:
            return refused

    return call


def release(settings, reservation_id: str, user_id: str) -> Callable[[], bool]:
    return lambda: services.release_free_request(settings, reservation_id, user_id, now=NOON)


def granted(results) -> list[str]:
    return [result for result in results if isinstance(result, str)]


def refused_buckets(results) -> Counter:
    return Counter(result.bucket for result in results if isinstance(result, FreeQuotaExhausted))


def read_counters(app) -> tuple[int, dict[str, int], dict[str, int]]:
    """(global count, user counts, open reservations per user) for DAY, read afresh."""
    with app.app_context():
        global_used = db.session.scalar(
            sa.select(GlobalDailyFreeUsage.count).where(GlobalDailyFreeUsage.day == DAY)
        )
        users = db.session.execute(
            sa.select(UserDailyFreeUsage.user_id, UserDailyFreeUsage.count).where(
                UserDailyFreeUsage.day == DAY, UserDailyFreeUsage.count > 0
            )
        )
        open_reservations = db.session.execute(
            sa.select(Reservation.user_id, sa.func.count())
            .where(Reservation.day == DAY, Reservation.released_at.is_(None))
            .group_by(Reservation.user_id)
        )
        return global_used or 0, dict(users.all()), dict(open_reservations.all())


@BOTH_BACKENDS
def test_concurrent_reserves_grant_exactly_the_global_limit(quota_app):
    settings, app = quota_app(user_limit=1000, global_limit=50)
    users = [f"user-{n}" for n in range(20)]

    results = run_at_once(app, [reserve_or_refusal(settings, users[n % 20]) for n in range(CALLERS)])

    assert len(granted(results)) == 50
    assert refused_buckets(results) == Counter({"global": 150})
    global_used, user_counts, open_reservations = read_counters(app)
    assert global_used == 50
    assert sum(user_counts.values()) == 50
    assert user_counts == open_reservations


@BOTH_BACKENDS
def test_concurrent_reserves_grant_exactly_each_users_limit(quota_app):
    settings, app = quota_app(user_limit=3, global_limit=100_000)
    users = [f"user-{n}" for n in range(10)]

    results = run_at_once(app, [reserve_or_refusal(settings, users[n % 10]) for n in range(CALLERS)])

    assert len(granted(results)) == 30
    assert refused_buckets(results) == Counter({"user": 170})
    global_used, user_counts, open_reservations = read_counters(app)
    assert global_used == 30
    assert user_counts == dict.fromkeys(users, 3) == open_reservations


@BOTH_BACKENDS
def test_concurrent_releases_of_one_reservation_give_it_back_once(quota_app):
    settings, app = quota_app(user_limit=10, global_limit=100)
    with app.app_context():
        reservation_id = services.reserve_free_request(settings, "alice", NOON)
        services.reserve_free_request(settings, "alice", NOON)

    results = run_at_once(app, [release(settings, reservation_id, "alice") for _ in range(20)])

    assert results.count(True) == 1
    assert read_counters(app) == (1, {"alice": 1}, {"alice": 1})


@BOTH_BACKENDS
def test_concurrent_reserves_and_releases_keep_counters_equal_to_open_reservations(quota_app):
    settings, app = quota_app(user_limit=12, global_limit=60)
    users = [f"user-{n}" for n in range(8)]
    with app.app_context():
        held = [(services.reserve_free_request(settings, u, NOON), u) for u in users for _ in range(5)]
    # Every held reservation is released by two callers at once, amid 120 new reserves.
    calls = [release(settings, rid, user_id) for rid, user_id in held for _ in range(2)]
    calls += [reserve_or_refusal(settings, users[n % 8]) for n in range(CALLERS - len(calls))]

    results = run_at_once(app, calls)

    releases, reserves = results[: 2 * len(held)], results[2 * len(held) :]
    assert releases.count(True) == len(held)
    global_used, user_counts, open_reservations = read_counters(app)
    assert global_used == len(granted(reserves)) <= 60
    assert user_counts == open_reservations
    assert all(count <= 12 for count in user_counts.values())


def reserve_tokens_or_refusal(settings, user_id: str, tokens: int) -> Callable[[], str | FreeQuotaExhausted]:
    def call():
        try:
            return services.reserve_free_request(settings, user_id, NOON, tokens)
        except FreeQuotaExhausted as refused:
            return refused

    return call


def user_tokens(app, user_id: str) -> int:
    with app.app_context():
        return db.session.scalar(
            sa.select(UserDailyFreeUsage.tokens).where(
                UserDailyFreeUsage.user_id == user_id, UserDailyFreeUsage.day == DAY
            )
        )


@BOTH_BACKENDS
def test_concurrent_reserves_never_take_more_than_the_token_budget(quota_app):
    settings, app = quota_app(user_limit=1000, global_limit=100_000, token_budget=1000)

    results = run_at_once(app, [reserve_tokens_or_refusal(settings, "alice", 30) for _ in range(100)])

    assert len(granted(results)) == 33  # 33 * 30 = 990; a 34th would pass 1000
    assert refused_buckets(results) == Counter({"tokens": 67})
    assert user_tokens(app, "alice") == 990
    assert read_counters(app) == (33, {"alice": 33}, {"alice": 33})


@BOTH_BACKENDS
def test_concurrent_settles_and_releases_of_one_reservation_move_the_tokens_once(quota_app):
    settings, app = quota_app(user_limit=10, global_limit=100, token_budget=10_000)
    with app.app_context():
        reservation_id = services.reserve_free_request(settings, "alice", NOON, 500)
        services.reserve_free_request(settings, "alice", NOON, 200)

    calls = [lambda: services.settle_free_request(settings, reservation_id, "alice", 100) for _ in range(20)]
    results = run_at_once(app, calls)

    assert results.count(True) == 1
    assert user_tokens(app, "alice") == 300
    results = run_at_once(
        app,
        [release(settings, reservation_id, "alice") for _ in range(10)]
        + [lambda: services.settle_free_request(settings, reservation_id, "alice", 7) for _ in range(10)],
    )
    assert results[:10].count(True) == 1
    assert results[10:].count(True) == 0
    assert user_tokens(app, "alice") == 200
