"""Sending a message: idempotent by clientRequestId, free quota reserved first, the reply streamed.

`start_send` does every check and database write that can fail before the stream starts (those
errors are plain JSON responses) and commits; `stream_reply` then holds no transaction while it
relays the provider, and stores the outcome once: complete, failed, or stopped (client left).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from chat_service import outbox
from chat_service.errors import EmailNotVerified, IdempotencyMismatch, RequestInProgress
from chat_service.free_limits import (
    bound_history,
    check_free_message,
    estimate_prompt_tokens,
    free_max_tokens,
    tokens_used,
)
from chat_service.models import Message, OutboxItem, Thread
from chat_service.schemas import message_schema
from chat_service.threads import INTERRUPTED, ensure_storage_room, fail_orphaned_replies, get_thread
from chat_service.upstream import (
    ResolvedKey,
    Upstream,
    api_error_for,
    is_free_model_unavailable,
    retry_in_background,
)
from shared.config import Settings
from shared.db import db, utcnow
from shared.errors import APIError, RateLimited
from shared.lifecycle import DRAIN
from shared.metrics import OPEN_STREAMS, UPSTREAM_ERRORS, UPSTREAM_LATENCY
from shared.providers import (
    AuthFailed,
    ChatMessage,
    ChatSettings,
    ChatStream,
    Done,
    PermissionDenied,
    ProviderAdapter,
    ProviderError,
    TextDelta,
    Usage,
)
from shared.sse import PING, PING_BYTES, pump, sse_event

logger = logging.getLogger(__name__)

HISTORY_STATUSES = ("complete", "stopped")
STREAM_CAP_RETRY_AFTER_SECONDS = 5


@dataclass
class SendPlan:
    """Everything the stream needs, read before it starts (no ORM objects cross into it)."""

    user_id: str
    thread_id: str
    mode: str
    provider: str
    models: list[str]
    system_prompt: str | None
    settings: ChatSettings
    history: list[ChatMessage]
    user_message: dict[str, Any]
    assistant_message: dict[str, Any]
    assistant_id: str
    key: ResolvedKey | None = field(default=None, repr=False)
    reservation_id: str | None = None
    # Free threads: the prompt's estimated tokens (settles the token budget when the provider sends
    # no usage) and how many of the oldest earlier messages the history bound left out.
    prompt_estimate: int = 0
    history_dropped: int | None = None
    lease_renewed_at: float = field(default_factory=time.monotonic)
    deadline: float = float("inf")  # time.monotonic() past which the reply is cut (STREAM_MAX_SECONDS)
    # Set when the reply's row was no longer `streaming`: a reader took this process for dead
    # (its lease ran out while it stalled), failed the reply and gave its free request back.
    lease_lost: bool = False


class ReplyTooLong(Exception):
    """The reply ran past STREAM_MAX_SECONDS."""


class ServerStopping(Exception):
    """This worker is stopping and its drain time is over."""


class LeaseLost(Exception):
    """Another process failed this reply as orphaned: it must not be told complete."""


def start_send(
    upstream: Upstream, user_id: str, thread_id: str, content: str, client_request_id: str
) -> Iterator[bytes]:
    """Check, reserve and store the request, then return the SSE byte stream of the reply."""
    thread = get_thread(user_id, thread_id)
    orphan_refunds = fail_orphaned_replies(thread.id, user_id, upstream.settings.stream_lease_seconds)
    db.session.commit()  # the orphans stay failed (and their refunds owed) whatever this send does next
    outbox.deliver(upstream, orphan_refunds)
    previous = _find_request(thread.id, client_request_id, content)
    if previous is not None and previous[1].status != "failed":
        return _answer_repeat(*previous)
    _check_stream_cap(user_id, upstream.settings)
    ensure_storage_room(upstream.settings, user_id, len(content.encode("utf-8")))
    free = thread.mode == "free"
    if free:
        check_free_message(upstream.settings, content)
    history, history_dropped = _history(upstream, thread, client_request_id, content)
    chat_settings = _chat_settings(upstream, thread)
    prompt_estimate = estimate_prompt_tokens(thread.system_prompt, history) if free else 0
    # Hand the connection back while keys and quota answer: a worker has few, and many sends.
    db.session.commit()

    key = upstream.resolve_key(user_id, thread.provider, thread.key_id) if not free else None
    if free and upstream.settings.free_require_verified_email and not upstream.email_verified(user_id):
        raise EmailNotVerified()
    reservation_id = (
        upstream.reserve_free_request(user_id, prompt_estimate + (chat_settings.max_tokens or 0))
        if free
        else None
    )
    try:
        user_message, assistant = _claim_request(thread, previous, content, client_request_id)
    except (IntegrityError, RequestInProgress):
        db.session.rollback()
        if reservation_id:
            release = outbox.enqueue_release(user_id, reservation_id)
            db.session.commit()
            outbox.deliver(upstream, [release.id])
        repeat = _find_request(thread.id, client_request_id, content)
        if repeat is None or repeat[1].status in ("streaming", "failed"):
            raise RequestInProgress() from None
        return _answer_repeat(*repeat)
    if reservation_id:
        # Should this process die mid-stream, whoever fails the orphaned reply gives it back.
        assistant.metadata_ = {"freeReservationId": reservation_id}

    plan = SendPlan(
        user_id=user_id,
        thread_id=thread.id,
        mode=thread.mode,
        provider=thread.provider,
        models=_candidate_models(upstream, thread),
        system_prompt=thread.system_prompt,
        settings=chat_settings,
        history=history,
        user_message=message_schema.dump(user_message),
        assistant_message=message_schema.dump(assistant),
        assistant_id=assistant.id,
        key=key,
        reservation_id=reservation_id,
        deadline=time.monotonic() + upstream.settings.stream_max_seconds,
        prompt_estimate=prompt_estimate,
        history_dropped=history_dropped,
    )
    db.session.commit()  # end the transaction: nothing is held open while the reply streams
    return stream_reply(upstream, plan)


def _check_stream_cap(user_id: str, settings: Settings) -> None:
    """429 when the user already has MAX_STREAMS_PER_USER replies streaming (leases still live).

    Checked before the request is stored: sends that arrive at the same instant may pass together,
    which the per-user send rate limit bounds; the cap is against piling up streams, not a quota."""
    cutoff = utcnow() - timedelta(seconds=settings.stream_lease_seconds)
    streaming = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Message)
        .join(Thread, Thread.id == Message.thread_id)
        .where(
            Thread.user_id == user_id,
            Message.status == "streaming",
            Message.updated_at >= cutoff,
        )
    )
    if streaming >= settings.max_streams_per_user:
        db.session.rollback()
        raise RateLimited(
            f"You already have {streaming} replies streaming; wait for one to finish.",
            headers={"Retry-After": str(STREAM_CAP_RETRY_AFTER_SECONDS)},
        )


def _find_request(thread_id: str, client_request_id: str, content: str) -> tuple[Message, Message] | None:
    """The stored request with this clientRequestId; 409 idempotency_mismatch if it held other content."""
    rows = db.session.scalars(
        sa.select(Message).where(
            Message.thread_id == thread_id, Message.client_request_id == client_request_id
        )
    ).all()
    by_role = {m.role: m for m in rows}
    if "user" in by_role and by_role["user"].content != content:
        db.session.rollback()
        raise IdempotencyMismatch()
    if "user" in by_role and "assistant" in by_role:
        return by_role["user"], by_role["assistant"]
    return None


def _claim_request(
    thread: Thread, previous: tuple[Message, Message] | None, content: str, client_request_id: str
) -> tuple[Message, Message]:
    """Store a new request, or take over a failed one for a retry; the database picks one winner."""
    now = utcnow()
    if previous is not None:
        user_message, assistant = previous
        claimed = db.session.execute(
            sa.update(Message)
            .where(Message.id == assistant.id, Message.status == "failed")
            .values(status="streaming", content="", metadata_={}, provider_message_id=None, updated_at=now)
        ).rowcount
        if not claimed:
            raise RequestInProgress()
        db.session.refresh(assistant)
    else:
        user_message = Message(
            thread_id=thread.id,
            role="user",
            content=content,
            status="complete",
            client_request_id=client_request_id,
            created_at=now,
            updated_at=now,
        )
        assistant = Message(
            thread_id=thread.id,
            role="assistant",
            content="",
            status="streaming",
            client_request_id=client_request_id,
            model=thread.model,
            metadata_={},
            created_at=now,
            updated_at=now,
        )
        db.session.add_all([user_message, assistant])
        db.session.flush()  # the unique constraint answers here: IntegrityError for a repeat
    thread.updated_at = now
    return user_message, assistant


def _candidate_models(upstream: Upstream, thread: Thread) -> list[str]:
    if thread.mode != "free":
        return [thread.model]
    fallbacks = [m for m in upstream.settings.groq_free_fallback_models if m != thread.model]
    return [thread.model, *fallbacks]


def _chat_settings(upstream: Upstream, thread: Thread) -> ChatSettings:
    max_tokens = thread.settings.get("maxTokens")
    if thread.mode == "free":
        max_tokens = free_max_tokens(upstream.settings, max_tokens)
    return ChatSettings(
        temperature=thread.settings.get("temperature"),
        max_tokens=max_tokens,
        top_p=thread.settings.get("topP"),
    )


def _history(
    upstream: Upstream, thread: Thread, client_request_id: str, content: str
) -> tuple[list[ChatMessage], int | None]:
    """The thread's earlier complete/stopped messages in order, then this request's message; on a
    free thread only the newest turns that fit FREE_MAX_HISTORY_CHARS, and how many were dropped."""
    earlier = db.session.scalars(
        sa.select(Message)
        .where(
            Message.thread_id == thread.id,
            Message.status.in_(HISTORY_STATUSES),
            Message.client_request_id != client_request_id,
        )
        .order_by(Message.created_at, sa.case((Message.role == "user", 0), else_=1))
    )
    history = [ChatMessage(role=m.role, content=m.content) for m in earlier if m.content]
    dropped = None
    if thread.mode == "free":
        history, dropped = bound_history(history, upstream.settings.free_max_history_chars)
    return [*history, ChatMessage(role="user", content=content)], dropped


# --- the stream -------------------------------------------------------------------------------


@dataclass
class Reply:
    """What has arrived from the provider so far."""

    model: str
    text: list[str] = field(default_factory=list)
    usage: dict[str, int | None] | None = None
    provider_message_id: str | None = None
    finish_reason: str | None = None

    @property
    def content(self) -> str:
        return "".join(self.text)


def stream_reply(upstream: Upstream, plan: SendPlan) -> Iterator[bytes]:
    """The SSE events of docs/api.md: message.created, delta*, usage?, then done or error."""
    yield sse_event(
        "message.created", {"userMessage": plan.user_message, "assistantMessage": plan.assistant_message}
    )
    reply = Reply(model=plan.models[0])
    OPEN_STREAMS.labels("chat").inc()
    try:
        yield from _relay_provider(upstream, plan, reply)
    except ProviderError as exc:
        if plan.key is not None:
            exc.scrub(plan.key.api_key)
        UPSTREAM_ERRORS.labels(plan.provider, exc.code).inc()
        logger.warning("provider failed", extra={"provider": plan.provider, "code": exc.code})
        yield _fail(upstream, plan, reply, exc, api_error_for(exc))
        return
    except ReplyTooLong as exc:
        logger.warning("reply cut at STREAM_MAX_SECONDS", extra={"message_id": plan.assistant_id})
        error = APIError(
            "The reply took longer than this server allows; what arrived is kept.",
            code="upstream_timeout",
            status=504,
            retryable=True,
        )
        yield _fail(upstream, plan, reply, exc, error)
        return
    except GeneratorExit:
        # The client left: stop reading the provider (done by closing the pump) and keep the part.
        _finish(plan, reply, "stopped")
        logger.info("client left; reply stored as stopped", extra={"message_id": plan.assistant_id})
        raise
    except LeaseLost:
        logger.warning("lease lost; reply ended as interrupted", extra={"message_id": plan.assistant_id})
        yield _lease_lost_event(plan)
        return
    except ServerStopping as exc:
        # This process is stopping (a deploy, `make run` ending) and the drain time is over: keep
        # the part and tell the client it may send the request again (to another process).
        logger.warning(
            "drained mid-stream; reply ended as interrupted", extra={"message_id": plan.assistant_id}
        )
        error = APIError(INTERRUPTED["message"], code="interrupted", status=503, retryable=True)
        yield _fail(upstream, plan, reply, exc, error)
        return
    except Exception as exc:
        logger.exception("stream failed unexpectedly")
        yield _fail(upstream, plan, reply, exc, APIError())
        return
    finally:
        OPEN_STREAMS.labels("chat").dec()
    if reply.usage:
        yield sse_event("usage", reply.usage)
    message = _finish(plan, reply, "complete")
    if plan.lease_lost:
        yield _lease_lost_event(plan)
        return
    yield sse_event("done", {"message": message})


def _lease_lost_event(plan: SendPlan) -> bytes:
    """The `error` event of a reply another process already failed (and stored, with no text)."""
    envelope = {"code": "interrupted", "message": INTERRUPTED["message"], "retryable": True}
    message = {**plan.assistant_message, "status": "failed", "content": "", "error": envelope}
    return sse_event("error", {"error": envelope, "message": message})


def _renew_lease(plan: SendPlan, every_seconds: float) -> None:
    """Now and then, touch the reply's row: proof that a process still streams it."""
    now = time.monotonic()
    if now - plan.lease_renewed_at < every_seconds:
        return
    plan.lease_renewed_at = now
    try:
        renewed = db.session.execute(
            sa.update(Message)
            .where(Message.id == plan.assistant_id, Message.status == "streaming")
            .values(updated_at=utcnow())
        ).rowcount
        db.session.commit()
    except Exception as exc:  # a missed renewal only matters after several in a row
        with contextlib.suppress(Exception):
            db.session.rollback()
        logger.warning("could not renew a stream lease: %s", type(exc).__name__)
        return
    if not renewed:
        plan.lease_lost = True
        raise LeaseLost()


class _ProviderCall:
    """One streamed chat request. Opening it happens inside the pump too, so pings flow while
    the provider thinks before its first byte, and a client that leaves then is noticed."""

    def __init__(self, adapter: ProviderAdapter, api_key: str, model: str, plan: SendPlan):
        self.adapter, self.api_key, self.model, self.plan = adapter, api_key, model, plan
        self.stream: ChatStream | None = None

    def events(self) -> Iterator[Any]:
        self.stream = self.adapter.stream_chat(
            self.api_key,
            model=self.model,
            messages=self.plan.history,
            system_prompt=self.plan.system_prompt,
            settings=self.plan.settings,
        )
        yield from self.stream

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _relay_provider(upstream: Upstream, plan: SendPlan, reply: Reply) -> Iterator[bytes]:
    api_key = plan.key.api_key if plan.key else upstream.settings.groq_api_key
    adapter = upstream.adapter(plan.provider)
    for index, model in enumerate(plan.models):
        reply.model = model
        started = time.perf_counter()
        call = _ProviderCall(adapter, api_key or "", model, plan)
        try:
            with contextlib.closing(
                pump(call.events(), upstream.settings.sse_idle_ping_seconds, close=call.close)
            ) as events:
                for event in events:
                    # Leaving the `with` closes the provider request.
                    if time.monotonic() > plan.deadline:
                        raise ReplyTooLong()
                    if DRAIN.due:
                        raise ServerStopping()
                    _renew_lease(plan, upstream.settings.stream_lease_seconds / 4)
                    if event is PING:
                        yield PING_BYTES
                    elif isinstance(event, TextDelta) and event.text:
                        if not reply.text:
                            UPSTREAM_LATENCY.labels(plan.provider).observe(time.perf_counter() - started)
                        reply.text.append(event.text)
                        yield sse_event("delta", {"text": event.text})
                    elif isinstance(event, Usage):
                        reply.usage = {
                            "promptTokens": event.prompt_tokens,
                            "outputTokens": event.output_tokens,
                            "totalTokens": event.total_tokens,
                        }
                    elif isinstance(event, Done):
                        reply.provider_message_id = event.provider_message_id
                        reply.finish_reason = event.finish_reason
            return
        except ProviderError as exc:
            more_models = index + 1 < len(plan.models)
            if plan.mode == "free" and not reply.text and more_models and is_free_model_unavailable(exc):
                logger.warning("free model %s unavailable (%s); trying the next", model, exc.code)
                continue
            raise


def _fail(upstream: Upstream, plan: SendPlan, reply: Reply, exc: Exception, error: APIError) -> bytes:
    """Store the failure (and give back a free request that got no token), build the error event."""
    if isinstance(exc, ProviderError) and plan.key is not None:
        # Only a rejected key is marked invalid; a key lacking a permission is still the user's key.
        rejected = isinstance(exc, AuthFailed) and not isinstance(exc, PermissionDenied)
        upstream.report_key_failure(plan.user_id, plan.key.id, exc.code, mark_invalid=rejected)
    envelope = {"code": error.code, "message": error.message, "retryable": error.retryable}
    message = _finish(plan, reply, "failed", error=envelope)
    return sse_event("error", {"error": envelope, "message": message})


def _finish(plan: SendPlan, reply: Reply, status: str, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store the assistant message's outcome and add its usage to the thread; return its JSON.

    A free request's reservation is settled (what it used), or given back when it failed before its
    first token: that call to quota_service goes in the outbox, committed with the outcome."""
    metadata: dict[str, Any] = {"usage": reply.usage, "finishReason": reply.finish_reason}
    if error:
        metadata["error"] = error
    quota_calls: list[OutboxItem] = []
    if plan.reservation_id:
        metadata["freeReservationId"] = plan.reservation_id
        if reply.text or status != "failed":
            used = tokens_used(reply.usage, plan.prompt_estimate, reply.content)
            quota_calls.append(outbox.enqueue_settle(plan.user_id, plan.reservation_id, used))
        else:
            quota_calls.append(outbox.enqueue_release(plan.user_id, plan.reservation_id))
    if plan.history_dropped is not None:
        metadata["historyDropped"] = plan.history_dropped
    values = {
        "content": reply.content,
        "status": status,
        "provider_message_id": reply.provider_message_id,
        "model": reply.model,
        "metadata_": metadata,
        "updated_at": utcnow(),
    }
    upstream: Upstream = current_app.extensions["keylm.upstream"]
    if _store_outcome(plan, values, reply.usage or {}, quota_calls):
        outbox.deliver(upstream, [call.id for call in quota_calls])
    else:
        # The database is away (a restart, a failover), so no table can hold this retry: keep trying
        # from memory rather than leave the message `streaming` until its lease runs out (then it is
        # failed, and its clientRequestId can be sent again). The quota call is written with it.
        app = current_app._get_current_object()

        def store_again() -> bool:
            with app.app_context():
                if not _store_outcome(plan, values, reply.usage or {}, quota_calls):
                    return False
                outbox.deliver(upstream, [call.id for call in quota_calls])
                return True

        retry_in_background(store_again, f"storing the outcome of message {plan.assistant_id}")
    return {
        **plan.assistant_message,
        "content": reply.content,
        "status": status,
        "providerMessageId": reply.provider_message_id,
        "model": reply.model,
        "usage": reply.usage,
        "error": error,
        "finishReason": reply.finish_reason,
        "historyDropped": plan.history_dropped,
    }


def _store_outcome(
    plan: SendPlan, values: dict[str, Any], usage: dict[str, Any], quota_calls: list[OutboxItem]
) -> bool:
    """One attempt at storing the outcome, with its outbox rows; False if the database failed. Safe
    to repeat: only a message still `streaming` is updated, and only then is its usage added to the
    thread (a rollback drops the rows from the session, so each attempt adds them again)."""
    try:
        db.session.add_all(quota_calls)
        stored = db.session.execute(
            sa.update(Message)
            .where(Message.id == plan.assistant_id, Message.status == "streaming")
            .values(**values)
        ).rowcount
        plan.lease_lost = plan.lease_lost or not stored
        if stored:
            db.session.execute(
                sa.update(Thread)
                .where(Thread.id == plan.thread_id)
                .values(
                    prompt_tokens=Thread.prompt_tokens + (usage.get("promptTokens") or 0),
                    output_tokens=Thread.output_tokens + (usage.get("outputTokens") or 0),
                    total_tokens=Thread.total_tokens + (usage.get("totalTokens") or 0),
                    updated_at=values["updated_at"],
                )
            )
        db.session.commit()
        return True
    except Exception as exc:
        with contextlib.suppress(Exception):
            db.session.rollback()
        # The type only: a database error's text would carry the message content.
        logger.warning("could not store the reply's outcome (%s): %s", values["status"], type(exc).__name__)
        return False


# --- repeats ------------------------------------------------------------------------------------


def _answer_repeat(user_message: Message, assistant: Message) -> Iterator[bytes]:
    """A repeat of a finished request: no upstream call, the stored result as the same events."""
    if assistant.status == "streaming":
        raise RequestInProgress()
    user = message_schema.dump(user_message)
    stored = message_schema.dump(assistant)
    db.session.rollback()
    return _replay(user, stored)


def _replay(user: dict[str, Any], stored: dict[str, Any]) -> Iterator[bytes]:
    created = {**stored, "content": "", "status": "streaming", "usage": None, "providerMessageId": None}
    yield sse_event("message.created", {"userMessage": user, "assistantMessage": created})
    if stored["content"]:
        yield sse_event("delta", {"text": stored["content"]})
    if stored["usage"]:
        yield sse_event("usage", stored["usage"])
    if stored["status"] == "complete":
        yield sse_event("done", {"message": stored})
    else:
        error = stored.get("error") or {
            "code": "stopped",
            "message": "This reply was stopped before it finished.",
            "retryable": False,
        }
        yield sse_event("error", {"error": error, "message": stored})
