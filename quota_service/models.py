"""quota schema: per-user and global free-request counters per UTC day, and the reservations behind them."""

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
        {"schema": SCHEMA},
    )

    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class GlobalDailyFreeUsage(db.Model):
    __tablename__ = "global_daily_free_usage"
    __table_args__ = (
        sa.CheckConstraint("count >= 0", name="ck_global_daily_free_usage_count_not_negative"),
        {"schema": SCHEMA},
    )

    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class Reservation(db.Model):
    """One free request taken from both buckets of `day`; `released_at` is set when it is given back."""

    __tablename__ = "reservations"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(36))
    day: Mapped[date]
    created_at: Mapped[datetime]
    released_at: Mapped[datetime | None]
