"""Threads: create, list (cursor pages, newest first), read with messages, rename, delete.

Every query is scoped to the owner: another user's thread is simply not found.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from chat_service import outbox
from chat_service.catalog import catalog_has_model
from chat_service.free_limits import check_free_system_prompt, free_thread_settings
from chat_service.models import Message, Thread
from chat_service.upstream import Upstream
from shared.config import Settings
from shared.db import db, utcnow
from shared.errors import APIError, Conflict, NotFound, ValidationFailed

logger = logging.getLogger(__name__)

DEFAULT_TITLE = "New chat"
FREE_PROVIDER = "groq"


def get_thread(user_id: str, thread_id: str) -> Thread:
    thread = db.session.scalar(sa.select(Thread).where(Thread.id == thread_id, Thread.user_id == user_id))
    if thread is None:
        raise NotFound("No such thread.")
    return thread


class LimitReached(Conflict):
    code = "limit_reached"


def _stored_bytes(column) -> sa.ColumnElement[int]:
    # Bytes, not characters: SQLite counts a BLOB's bytes; Postgres has octet_length.
    if db.engine.dialect.name == "postgresql":
        return sa.func.coalesce(sa.func.sum(sa.func.octet_length(column)), 0)
    return sa.func.coalesce(sa.func.sum(sa.func.length(sa.cast(column, sa.LargeBinary))), 0)


def stored_bytes(user_id: str) -> int:
    """What the user keeps with us: every system prompt and every message's text."""
    prompts = db.session.scalar(
        sa.select(_stored_bytes(Thread.system_prompt)).where(Thread.user_id == user_id)
    )
    messages = db.session.scalar(
        sa.select(_stored_bytes(Message.content))
        .join(Thread, Thread.id == Message.thread_id)
        .where(Thread.user_id == user_id)
    )
    return int(prompts or 0) + int(messages or 0)


def ensure_storage_room(settings: Settings, user_id: str, adding: int) -> None:
    """409 limit_reached when `adding` bytes would take the user past MAX_STORED_BYTES_PER_USER.

    Read, then written by the caller: concurrent writes may overshoot by what the per-minute limits
    let through, which a size cap can afford (unlike the quota counters).
    """
    if stored_bytes(user_id) + adding > settings.max_stored_bytes_per_user:
        raise LimitReached(
            "You have stored as much text as one account may; delete some threads first.",
            details={"limit": "storedBytes", "max": settings.max_stored_bytes_per_user},
        )


def _ensure_thread_room(settings: Settings, user_id: str, system_prompt: str | None) -> None:
    count = db.session.scalar(sa.select(sa.func.count()).select_from(Thread).where(Thread.user_id == user_id))
    if count >= settings.max_threads_per_user:
        raise LimitReached(
            "You have as many threads as one account may; delete some first.",
            details={"limit": "threads", "max": settings.max_threads_per_user},
        )
    ensure_storage_room(settings, user_id, len((system_prompt or "").encode("utf-8")))


def create_thread(upstream: Upstream, user_id: str, data: dict[str, Any]) -> Thread:
    """A free thread (the free Groq model) or a byok one (a model from an active key's catalog)."""
    _ensure_thread_room(upstream.settings, user_id, data.get("systemPrompt"))
    settings = {k: v for k, v in (data.get("settings") or {}).items() if v is not None}
    if data["mode"] == "free":
        check_free_system_prompt(upstream.settings, data.get("systemPrompt"))
        settings = free_thread_settings(upstream.settings, settings)
        provider, model, key_id = FREE_PROVIDER, upstream.settings.groq_free_model, None
    else:
        provider, model = data["provider"], data["model"]
        try:
            key = upstream.resolve_key(user_id, provider, data.get("keyId"))
        except APIError as exc:
            if exc.code in ("key_not_active", "not_found"):
                raise ValidationFailed(
                    {"keyId": [f"No active {provider} key: add or re-validate one first."]}
                ) from None
            raise
        if not catalog_has_model(upstream, user_id, key, model):
            raise ValidationFailed({"model": [f"{model} is not in this key's model list."]})
        key_id = key.id
    thread = Thread(
        user_id=user_id,
        mode=data["mode"],
        provider=provider,
        model=model,
        key_id=key_id,
        title=(data.get("title") or "").strip() or DEFAULT_TITLE,
        system_prompt=data.get("systemPrompt") or None,
        settings=settings,
    )
    db.session.add(thread)
    db.session.commit()
    return thread


def list_threads(user_id: str, limit: int, cursor: str | None) -> tuple[list[Thread], str | None]:
    """One page, newest `updatedAt` first; the cursor is opaque (the last row's sort key)."""
    query = sa.select(Thread).where(Thread.user_id == user_id)
    if cursor:
        updated_at, thread_id = _decode_cursor(cursor)
        query = query.where(
            sa.or_(
                Thread.updated_at < updated_at,
                sa.and_(Thread.updated_at == updated_at, Thread.id < thread_id),
            )
        )
    rows = list(
        db.session.scalars(query.order_by(Thread.updated_at.desc(), Thread.id.desc()).limit(limit + 1))
    )
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def _encode_cursor(thread: Thread) -> str:
    raw = json.dumps([thread.updated_at.isoformat(), thread.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, thread_id = json.loads(raw)
        if not isinstance(thread_id, str) or "\x00" in thread_id:  # Postgres text cannot hold a NUL
            raise ValueError("not an id we issued")
        return datetime.fromisoformat(updated_at), thread_id
    except (binascii.Error, ValueError, TypeError):
        raise ValidationFailed({"cursor": ["Not a cursor from this API."]}) from None


INTERRUPTED = {
    "code": "interrupted",
    "message": "This reply was interrupted on the server; send it again.",
    "retryable": True,
}


def fail_orphaned_replies(thread_id: str, user_id: str, lease_seconds: float) -> list[str]:
    """Mark replies whose streaming process died as failed, so they can be retried, and owe back
    the free requests they held (outbox rows in the same transaction); the ids of those rows, for
    the caller to deliver once it has committed.

    A streaming reply renews its lease (updated_at) while it streams; one whose lease is older
    than STREAM_LEASE_SECONDS lost its chat_service process (a crash, a deploy). Its text died with
    the process (the row holds none), so its free request is not counted. The caller commits.
    """
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    expired = (Message.thread_id == thread_id, Message.status == "streaming", Message.updated_at < cutoff)
    # Look before writing: an UPDATE would take SQLite's write lock on every send.
    orphans = db.session.execute(sa.select(Message.id, Message.metadata_).where(*expired)).all()
    refunds = []
    for message_id, metadata in orphans:
        # Readers on other replicas may find the same orphan: the one whose update lands gives back.
        failed = db.session.execute(
            sa.update(Message)
            .where(Message.id == message_id, *expired)
            .values(status="failed", metadata_={"usage": None, "error": INTERRUPTED}, updated_at=utcnow())
        ).rowcount
        if failed and (metadata or {}).get("freeReservationId"):
            refunds.append(outbox.enqueue_release(user_id, metadata["freeReservationId"]).id)
    if orphans:
        logger.warning("failed %d orphaned streaming replies", len(orphans), extra={"thread_id": thread_id})
    return refunds


def read_thread(user_id: str, thread_id: str, upstream: Upstream) -> tuple[Thread, list[Message]]:
    """A thread and its messages, oldest first; replies orphaned by a dead process are failed first
    (and that is committed: a reader is told the truth, and the next reader need not do it again)."""
    thread = get_thread(user_id, thread_id)
    refunds = fail_orphaned_replies(thread.id, user_id, upstream.settings.stream_lease_seconds)
    db.session.commit()
    outbox.deliver(upstream, refunds)
    messages = db.session.scalars(
        sa.select(Message)
        .where(Message.thread_id == thread.id)
        .order_by(Message.created_at, sa.case((Message.role == "user", 0), else_=1))
    )
    return thread, list(messages)


def rename_thread(user_id: str, thread_id: str, title: str) -> Thread:
    thread = get_thread(user_id, thread_id)
    thread.title = title.strip() or DEFAULT_TITLE
    thread.updated_at = utcnow()
    db.session.commit()
    return thread


def delete_thread(user_id: str, thread_id: str) -> None:
    """Delete the thread and its messages (explicitly: SQLite may not cascade)."""
    thread = get_thread(user_id, thread_id)
    db.session.execute(sa.delete(Message).where(Message.thread_id == thread.id))
    db.session.delete(thread)
    db.session.commit()
