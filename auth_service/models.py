"""auth schema: users, sessions (server-side, so a session can be ended), reset and email
confirmation tokens (hashed)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db, utcnow

SCHEMA = "auth"


def new_id() -> str:
    return str(uuid.uuid4())


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    # Stored lowercased: emails compare case-insensitively, and the unique index enforces it.
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once the user opened a confirmation link (FREE_REQUIRE_VERIFIED_EMAIL gates KeyLM Free on it).
    email_verified_at: Mapped[datetime | None]


class Session(db.Model):
    __tablename__ = "sessions"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class PasswordResetToken(db.Model):
    __tablename__ = "password_reset_tokens"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    # SHA-256 of the token: a database dump does not let anyone reset a password.
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class EmailVerificationToken(db.Model):
    """A single-use link that confirms the user owns their email; stored hashed, like reset tokens."""

    __tablename__ = "email_verification_tokens"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
