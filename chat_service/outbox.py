"""The outbox: calls to quota_service that must get through even if this process dies first.

A free request's reservation is given back (the provider failed before the first token) or settled
(charged what it really used). Either call follows a write of the message's outcome, so its row is
added to the same transaction: the outcome and the promise to tell quota_service commit together.
After the commit the row is delivered at once; if quota_service cannot take it, the row stays, and
every chat_service process drains due rows on start and on a timer, until each gets through.

Several processes may drain the same table: a row is claimed by one conditional UPDATE that moves
its due time forward (`WHERE next_attempt_at <= now`), so only one of them tries it at a time, on
SQLite and Postgres alike. Both calls are idempotent in quota_service, so a call repeated after a
crash between the call and the row's deletion is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from chat_service.models import OutboxItem, new_id
from chat_service.upstream import Upstream
from shared.db import db, utcnow

logger = logging.getLogger(__name__)

RELEASE = "free_release"
SETTLE = "free_settle"
DRAIN_EVERY_SECONDS = 2.0
# A claimed row is left alone by other processes this long (far more than one call's timeout).
CLAIM_SECONDS = 60.0
MAX_DELAY_SECONDS = 60.0
# A reservation counts for one UTC day; a release or settle older than this no longer matters.
GIVE_UP_AFTER = timedelta(days=1)
DRAIN_BATCH = 50


def enqueue_release(user_id: str, reservation_id: str) -> OutboxItem:
    """Add "give this reservation back" to the session; the caller's commit writes it."""
    return _enqueue(RELEASE, user_id, {"reservationId": reservation_id})


def enqueue_settle(user_id: str, reservation_id: str, used_tokens: int) -> OutboxItem:
    """Add "charge this reservation what it used" to the session; the caller's commit writes it."""
    return _enqueue(SETTLE, user_id, {"reservationId": reservation_id, "usedTokens": used_tokens})


def _enqueue(kind: str, user_id: str, payload: dict) -> OutboxItem:
    item = OutboxItem(id=new_id(), kind=kind, user_id=user_id, payload=payload, attempts=0)
    item.next_attempt_at = item.created_at = utcnow()
    db.session.add(item)
    return item


def deliver(upstream: Upstream, item_ids: list[str]) -> None:
    """Try committed rows now (each claimed first); what fails stays for the drain."""
    for item_id in item_ids:
        try:
            _deliver_one(upstream, item_id)
        except Exception as exc:  # the database is away: the row is retried once it is back
            with contextlib.suppress(Exception):
                db.session.rollback()
            logger.warning("outbox delivery interrupted: %s", type(exc).__name__)


def drain_due(upstream: Upstream) -> int:
    """Deliver every due row (a batch at a time); the number of rows tried."""
    due = list(
        db.session.scalars(
            sa.select(OutboxItem.id)
            .where(OutboxItem.next_attempt_at <= utcnow())
            .order_by(OutboxItem.next_attempt_at)
            .limit(DRAIN_BATCH)
        )
    )
    db.session.commit()
    deliver(upstream, due)
    return len(due)


def _deliver_one(upstream: Upstream, item_id: str) -> None:
    now = utcnow()
    claimed = db.session.execute(
        sa.update(OutboxItem)
        .where(OutboxItem.id == item_id, OutboxItem.next_attempt_at <= now)
        .values(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS), attempts=OutboxItem.attempts + 1)
    ).rowcount
    db.session.commit()
    if not claimed:
        return  # delivered already, or another process has it
    item = db.session.get(OutboxItem, item_id)
    if item is None:
        return
    reservation_id = item.payload.get("reservationId", "")
    if item.kind == RELEASE:
        done = upstream.try_release_free_request(item.user_id, reservation_id)
    else:
        used = item.payload.get("usedTokens", 0)
        done = upstream.try_settle_free_request(item.user_id, reservation_id, used)
    if done or utcnow() - item.created_at > GIVE_UP_AFTER:
        if not done:
            logger.error("outbox: gave up on %s of reservation %s", item.kind, reservation_id)
        elif item.attempts > 1:
            logger.info("outbox: %s of %s done after %d attempts", item.kind, reservation_id, item.attempts)
        db.session.execute(sa.delete(OutboxItem).where(OutboxItem.id == item_id))
    else:
        delay = min(2.0 ** (item.attempts - 1), MAX_DELAY_SECONDS)
        db.session.execute(
            sa.update(OutboxItem)
            .where(OutboxItem.id == item_id)
            .values(next_attempt_at=utcnow() + timedelta(seconds=delay), last_error="quota_unavailable")
        )
    db.session.commit()


class OutboxDrainer:
    """One background loop per process that drains due rows every DRAIN_EVERY_SECONDS."""

    def __init__(self, app: Flask, upstream: Upstream):
        self.app = app
        self.upstream = upstream
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start once, lazily (`flask db upgrade` builds the app too, and must not drain)."""
        if self._started:
            return
        with self._lock:
            if not self._started:
                threading.Thread(target=self._loop, name="keylm-outbox", daemon=True).start()
                self._started = True

    def _loop(self) -> None:
        while True:
            try:
                with self.app.app_context():
                    drain_due(self.upstream)
            except Exception as exc:  # the database is away: try again on the next tick
                logger.warning("outbox drain failed: %s", type(exc).__name__)
            time.sleep(DRAIN_EVERY_SECONDS)


def init_outbox(app: Flask, upstream: Upstream) -> OutboxDrainer:
    """Drain on this process's first request (the runner's health check is one) and then on a timer."""
    drainer = OutboxDrainer(app, upstream)
    app.extensions["keylm.outbox"] = drainer

    @app.before_request
    def start_outbox_drain():
        drainer.start()

    return drainer
