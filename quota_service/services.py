"""KeyLM Free counters: reserve, settle and release one free request, and a day's usage. One commit per call.

Both buckets (the user's and everyone's) are counted per UTC day and reset at 00:00 UTC. A reservation
takes one from both or from neither, with conditional upserts only (never read-then-write in Python),
so it stays right with any number of concurrent callers and service replicas, on Postgres and SQLite.
Beside the request count, each user has a daily token budget (FREE_USER_DAILY_TOKENS): a reservation
also takes its estimated tokens, and settling it replaces the estimate by what the provider counted.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NoReturn

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from quota_service.errors import FreeQuotaExhausted
from quota_service.models import GlobalDailyFreeUsage, Reservation, UserDailyFreeUsage
from shared.config import Settings
from shared.db import db, utcnow
from shared.errors import NotFound
from shared.metrics import QUOTA_DECISIONS

logger = logging.getLogger(__name__)

# The product shows a "connect your own key" reminder from the fifth free request of a day on.
KEY_REMINDER_AFTER_FREE_REQUESTS = 5
_CounterModel = type[GlobalDailyFreeUsage] | type[UserDailyFreeUsage]
_UPSERT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass(frozen=True)
class BucketUsage:
    """One bucket's count for a day against its limit."""

    used: int
    limit: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True)
class FreeUsage:
    """A user's view of KeyLM Free for one UTC day."""

    day: date
    model: str
    user: BucketUsage
    global_pool: BucketUsage
    tokens: BucketUsage
    requires_verified_email: bool = False

    @property
    def resets_at(self) -> datetime:
        return next_utc_midnight(self.day)

    @property
    def available(self) -> bool:
        return self.user.remaining > 0 and self.global_pool.remaining > 0 and self.tokens.remaining > 0

    @property
    def show_key_reminder(self) -> bool:
        return self.user.used >= KEY_REMINDER_AFTER_FREE_REQUESTS


def clock(settings: Settings) -> datetime:
    """Now as naive UTC: the real clock, or the ISO 8601 instant in `settings.fake_clock_file` if it exists.

    The file is for end-to-end tests only (crossing midnight in real processes); write it atomically
    (a temporary file, then rename), since a half-written file is an error, not the real time.
    """
    path = settings.fake_clock_file
    if path is None:
        return utcnow()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return utcnow()
    try:
        return as_naive_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"fake clock file {path} does not hold an ISO 8601 time: {text!r}") from None


def as_naive_utc(moment: datetime) -> datetime:
    """`moment` as naive UTC (how the database stores times); a naive value is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def next_utc_midnight(day: date) -> datetime:
    """00:00 UTC after `day`: when both of that day's buckets reset."""
    return datetime.combine(day + timedelta(days=1), time.min)


def reserve_free_request(settings: Settings, user_id: str, now: datetime, estimated_tokens: int = 0) -> str:
    """Take one free request from both today's global and user buckets and `estimated_tokens` from
    the user's token budget, or raise FreeQuotaExhausted (nothing is taken then)."""
    now = as_naive_utc(now)
    day = now.date()
    if estimated_tokens > settings.free_user_daily_tokens:
        _refuse(user_id, "tokens", day)
    _begin_counter_transaction()
    # Lock order is always the global row, then the user row (release follows it too): two
    # transactions never hold one each while waiting for the other, so they cannot deadlock.
    if _add_one_below_limit(GlobalDailyFreeUsage, {"day": day}, settings.free_global_daily_limit) is None:
        _refuse(user_id, "global", day)
    user_key = {"user_id": user_id, "day": day}
    if _add_one_below_limit(UserDailyFreeUsage, user_key, settings.free_user_daily_limit) is None:
        _refuse(user_id, "user", day)
    if not _add_tokens_within_budget(user_id, day, estimated_tokens, settings.free_user_daily_tokens):
        _refuse(user_id, "tokens", day)
    reservation_id = str(uuid.uuid4())
    db.session.add(
        Reservation(
            id=reservation_id, user_id=user_id, day=day, created_at=now, estimated_tokens=estimated_tokens
        )
    )
    db.session.commit()
    QUOTA_DECISIONS.labels(outcome="granted").inc()
    return reservation_id


def release_free_request(
    settings: Settings, reservation_id: str, user_id: str, *, now: datetime | None = None
) -> bool:
    """Give a reservation back to both buckets of its day, once; False if it was already given back.

    404 when the reservation does not exist or belongs to another user.
    """
    _begin_counter_transaction()
    # One conditional UPDATE marks it released: of two concurrent releases, exactly one gets the day back.
    released = db.session.execute(
        sa.update(Reservation)
        .where(
            Reservation.id == reservation_id,
            Reservation.user_id == user_id,
            Reservation.released_at.is_(None),
        )
        .values(released_at=as_naive_utc(now) if now else utcnow())
        .returning(Reservation.day, Reservation.estimated_tokens, Reservation.settled_tokens)
    ).first()
    if released is None:
        db.session.rollback()
        if _reservation_exists(reservation_id, user_id):
            return False
        raise NotFound("No such reservation.")
    day, estimated, settled = released
    # Same lock order as reserve_free_request: global row, then user row.
    _subtract_one(GlobalDailyFreeUsage, GlobalDailyFreeUsage.day == day)
    _subtract_one(UserDailyFreeUsage, UserDailyFreeUsage.user_id == user_id, UserDailyFreeUsage.day == day)
    _add_tokens(user_id, day, -(settled if settled is not None else estimated))
    db.session.commit()
    logger.info("free request released", extra={"user_id": user_id})
    return True


def settle_free_request(settings: Settings, reservation_id: str, user_id: str, used_tokens: int) -> bool:
    """Replace a reservation's estimated tokens by `used_tokens` in its day's user budget, once.

    False if it was already settled or given back; 404 when it does not exist or is another user's.
    The result may pass the budget (a provider counted more than estimated): the next reservation
    of that day is refused then.
    """
    _begin_counter_transaction()
    # One conditional UPDATE settles it: of two concurrent settles (or a settle and a release),
    # exactly one moves the user's tokens.
    settled = db.session.execute(
        sa.update(Reservation)
        .where(
            Reservation.id == reservation_id,
            Reservation.user_id == user_id,
            Reservation.released_at.is_(None),
            Reservation.settled_tokens.is_(None),
        )
        .values(settled_tokens=used_tokens)
        .returning(Reservation.day, Reservation.estimated_tokens)
    ).first()
    if settled is None:
        db.session.rollback()
        if _reservation_exists(reservation_id, user_id):
            return False
        raise NotFound("No such reservation.")
    day, estimated = settled
    _add_tokens(user_id, day, used_tokens - estimated)
    db.session.commit()
    return True


def free_usage_snapshot(settings: Settings, user_id: str, now: datetime) -> FreeUsage:
    """The user's and the global free usage for the UTC day of `now`."""
    day = as_naive_utc(now).date()
    user_row = db.session.execute(
        sa.select(UserDailyFreeUsage.count, UserDailyFreeUsage.tokens).where(
            UserDailyFreeUsage.user_id == user_id, UserDailyFreeUsage.day == day
        )
    ).first()
    user_used, tokens_used = user_row if user_row else (0, 0)
    global_used = db.session.scalar(
        sa.select(GlobalDailyFreeUsage.count).where(GlobalDailyFreeUsage.day == day)
    )
    return FreeUsage(
        day=day,
        model=settings.groq_free_model,
        user=BucketUsage(used=user_used or 0, limit=settings.free_user_daily_limit),
        global_pool=BucketUsage(used=global_used or 0, limit=settings.free_global_daily_limit),
        tokens=BucketUsage(used=tokens_used, limit=settings.free_user_daily_tokens),
        requires_verified_email=settings.free_require_verified_email,
    )


def _refuse(user_id: str, full_bucket: str, day: date) -> NoReturn:
    # The rollback also undoes the global +1 when only the user bucket was full: neither is taken.
    db.session.rollback()
    QUOTA_DECISIONS.labels(outcome="refused").inc()
    logger.info("free request refused", extra={"user_id": user_id, "bucket": full_bucket})
    raise FreeQuotaExhausted(full_bucket, next_utc_midnight(day))


def _begin_counter_transaction() -> None:
    """Start the unit of work that moves counters.

    Postgres needs nothing more: each upsert/update locks its row until commit. SQLite has one writer at
    a time; BEGIN IMMEDIATE takes that write lock up front (waiting out the busy timeout), so the
    statements of a reservation run as one writer's turn and a later write can never fail to upgrade.
    """
    connection = db.session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _add_one_below_limit(model: _CounterModel, key: dict[str, object], limit: int) -> int | None:
    """Add 1 to the counter row `key` (creating it at 1) unless it is at `limit`: the new count, or None.

    A single INSERT ... ON CONFLICT DO UPDATE ... WHERE count < limit RETURNING count. Two first
    reservations of a day cannot both insert: the loser of the unique-key race waits for the winner and
    takes the update branch, and the WHERE sees the winner's committed count.
    """
    dialect = db.session.get_bind().dialect.name
    statement = (
        _UPSERT_INSERTS[dialect](model)
        .values(**key, count=1)
        .on_conflict_do_update(
            index_elements=list(key), set_={"count": model.count + 1}, where=model.count < limit
        )
        .returning(model.count)
    )
    return db.session.scalar(statement)


def _add_tokens_within_budget(user_id: str, day: date, tokens: int, budget: int) -> bool:
    """Add `tokens` to the user's row of `day` (it exists: the request count was just taken) if the
    sum stays within `budget`; one conditional UPDATE, so concurrent reservations cannot overshoot."""
    added = db.session.scalar(
        sa.update(UserDailyFreeUsage)
        .where(
            UserDailyFreeUsage.user_id == user_id,
            UserDailyFreeUsage.day == day,
            UserDailyFreeUsage.tokens < budget,
            UserDailyFreeUsage.tokens + tokens <= budget,
        )
        .values(tokens=UserDailyFreeUsage.tokens + tokens)
        .returning(UserDailyFreeUsage.tokens)
    )
    return added is not None


def _add_tokens(user_id: str, day: date, delta: int) -> None:
    """Move the user's tokens of `day` by `delta` (never below zero), in one statement."""
    moved = UserDailyFreeUsage.tokens + delta
    db.session.execute(
        sa.update(UserDailyFreeUsage)
        .where(UserDailyFreeUsage.user_id == user_id, UserDailyFreeUsage.day == day)
        .values(tokens=sa.case((moved < 0, 0), else_=moved))
    )


def _subtract_one(model: _CounterModel, *where: sa.ColumnElement[bool]) -> None:
    db.session.execute(sa.update(model).where(*where, model.count > 0).values(count=model.count - 1))


def _reservation_exists(reservation_id: str, user_id: str) -> bool:
    found = db.session.scalar(
        sa.select(Reservation.id).where(Reservation.id == reservation_id, Reservation.user_id == user_id)
    )
    return found is not None
