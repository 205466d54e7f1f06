"""quota schema: per-user and global free-request counters per UTC day (and the user's tokens), and the
reservations behind them."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db

SCHEMA = "quota"


class UserDailyFreeUsage(db.Model):
    __tablename__ = "user_daily_free_usage"
    __table_args__ = (
        sa.CheckConstraint("count >= 0", name="ck_user_daily_free_usage_count_not_negative"),
        sa.CheckConstraint("tokens >= 0", name="ck_user_daily_free_usage_tokens_not_negative"),
        {"schema": SCHEMA},
    )

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    # Tokens of the day's free requests: estimates while they run, the provider's counts once settled.
    tokens: Mapped[int] = mapped_column(default=0, server_default="0")


class GlobalDailyFreeUsage(db.Model):
    __tablename__ = "global_daily_free_usage"
    __table_args__ = (
        sa.CheckConstraint("count >= 0", name="ck_global_daily_free_usage_count_not_negative"),
        {"schema": SCHEMA},
    )

    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class Reservation(db.Model):
    """One free request taken from both buckets of `day`; `released_at` is set when it is given back.

    `estimated_tokens` were taken from the user's token budget when it was made; `settled_tokens`
    (set once, after the reply) is what the provider counted, and replaced the estimate.
    """

    __tablename__ = "reservations"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(36))
    day: Mapped[date]
    created_at: Mapped[datetime]
    released_at: Mapped[datetime | None]
    estimated_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    settled_tokens: Mapped[int | None]
