"""chat schema: threads, their messages, and the per-key model catalog cache."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db, utcnow

SCHEMA = "chat"


def new_id() -> str:
    return str(uuid.uuid4())


class Thread(db.Model):
    __tablename__ = "threads"
    __table_args__ = (
        sa.Index("ix_chat_threads_user_updated", "user_id", "updated_at", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.String(36))
    mode: Mapped[str] = mapped_column(sa.String(8))  # free | byok
    provider: Mapped[str] = mapped_column(sa.String(16))
    model: Mapped[str] = mapped_column(sa.String(200))
    key_id: Mapped[str | None] = mapped_column(sa.String(36))
    title: Mapped[str] = mapped_column(sa.String(200))
    system_prompt: Mapped[str | None] = mapped_column(sa.Text)
    settings: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    total_tokens: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        # One user message and one assistant message per clientRequestId in a thread: the
        # database, not Python, decides which of two concurrent identical sends goes upstream.
        sa.UniqueConstraint("thread_id", "role", "client_request_id", name="uq_chat_messages_request"),
        sa.Index("ix_chat_messages_thread_created", "thread_id", "created_at"),
        {"schema": SCHEMA},
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    thread_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey(f"{SCHEMA}.threads.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(sa.String(16))  # user | assistant
    content: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(16))  # complete | streaming | stopped | failed
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(200))
    client_request_id: Mapped[str] = mapped_column(sa.String(128))
    model: Mapped[str | None] = mapped_column(sa.String(200))
    # {"usage": {...} | None, "error": {...}, "finishReason": ..., "reservationId": ...}
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProviderModelCache(db.Model):
    __tablename__ = "provider_model_cache"
    __table_args__ = {"schema": SCHEMA}

    key_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    provider: Mapped[str] = mapped_column(sa.String(16))
    models: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    fetched_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class OutboxItem(db.Model):
    """A call to another service that must happen even if this process dies first (a free
    reservation to give back or to settle). Written in the transaction of the work it follows,
    delivered at once, and retried from this table (chat_service/outbox.py) until it gets through."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_chat_outbox_due", "next_attempt_at"), {"schema": SCHEMA})

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(sa.String(32))  # free_release | free_settle
    user_id: Mapped[str] = mapped_column(sa.String(36))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    # Due time; a claim moves it forward, so another worker skips the row while it is tried.
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
