"""chat_service's outbox on a real database (SQLite and Postgres): a quota call written with the work
it follows is delivered once, retried with backoff while quota_service is away, and claimed by one
process at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from chat_service import outbox
from chat_service.app import create_app
from chat_service.models import OutboxItem
from shared.db import db, utcnow
from tests.integration.conftest import migrated_app


class FakeQuota:
    """Stands in for quota_service across the boundary: answers as told, records each call."""

    def __init__(self, up: bool = True):
        self.up = up
        self.calls: list[tuple] = []

    def try_release_free_request(self, user_id: str, reservation_id: str) -> bool:
        self.calls.append(("release", user_id, reservation_id))
        return self.up

    def try_settle_free_request(self, user_id: str, reservation_id: str, used_tokens: int) -> bool:
        self.calls.append(("settle", user_id, reservation_id, used_tokens))
        return self.up


@pytest.fixture
def chat_db(settings_for):
    context = migrated_app(create_app, settings_for()).app_context()
    context.push()
    yield
    db.session.remove()
    db.engine.dispose()
    context.pop()


def rows() -> list[OutboxItem]:
    return list(db.session.scalars(sa.select(OutboxItem)))


def test_a_row_is_written_only_with_the_work_it_follows(chat_db):
    outbox.enqueue_release("alice", "r1")
    db.session.rollback()  # the work failed: no promise to give anything back either
    assert rows() == []
    item = outbox.enqueue_release("alice", "r2")
    db.session.commit()
    assert [row.id for row in rows()] == [item.id]


def test_a_delivered_row_is_gone_and_its_call_made_once(chat_db):
    quota = FakeQuota()
    item = outbox.enqueue_settle("alice", "r1", 250)
    db.session.commit()
    outbox.deliver(quota, [item.id])
    outbox.deliver(quota, [item.id])  # nothing left to do
    assert quota.calls == [("settle", "alice", "r1", 250)]
    assert rows() == []


def test_an_undelivered_row_stays_with_backoff_and_is_drained_when_due(chat_db):
    quota = FakeQuota(up=False)
    item = outbox.enqueue_release("alice", "r1")
    db.session.commit()
    outbox.deliver(quota, [item.id])
    (row,) = rows()
    assert row.attempts == 1 and row.last_error == "quota_unavailable"
    assert row.next_attempt_at > utcnow()
    assert outbox.drain_due(quota) == 0  # not due yet

    db.session.execute(sa.update(OutboxItem).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    quota.up = True
    assert outbox.drain_due(quota) == 1
    assert rows() == [] and quota.calls == [("release", "alice", "r1")] * 2


def test_a_claimed_row_is_left_alone_by_another_process(chat_db):
    quota = FakeQuota()
    item = outbox.enqueue_release("alice", "r1")
    db.session.commit()
    # Another process claimed it a moment ago (its claim moved the due time forward).
    db.session.execute(
        sa.update(OutboxItem).values(next_attempt_at=utcnow() + timedelta(seconds=outbox.CLAIM_SECONDS))
    )
    db.session.commit()
    outbox.deliver(quota, [item.id])
    assert outbox.drain_due(quota) == 0
    assert quota.calls == [] and len(rows()) == 1


def test_a_row_older_than_a_day_is_dropped_after_its_last_try(chat_db):
    quota = FakeQuota(up=False)
    item = outbox.enqueue_release("alice", "r1")
    item.created_at = utcnow() - outbox.GIVE_UP_AFTER - timedelta(minutes=1)
    db.session.commit()
    outbox.deliver(quota, [item.id])
    assert rows() == [] and len(quota.calls) == 1
