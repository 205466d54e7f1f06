"""keys schema: the users' provider keys (encrypted) and the audit log of what happened to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db, utcnow

SCHEMA = "keys"

ACTIVE, INVALID, REVOKED = "active", "invalid", "revoked"
KEY_STATUSES = (ACTIVE, INVALID, REVOKED)


def new_id() -> str:
    return str(uuid.uuid4())


class ProviderKey(db.Model):
    __tablename__ = "provider_keys"
    __table_args__ = (
        sa.Index("ix_keys_provider_keys_user_id_provider", "user_id", "provider"),
        sa.CheckConstraint("status IN ('active', 'invalid', 'revoked')", name="ck_provider_keys_status"),
        # A revoked key has no ciphertext left, and only a revoked key lacks one.
        sa.CheckConstraint(
            "(status = 'revoked' AND key_ciphertext IS NULL)"
            " OR (status <> 'revoked' AND key_ciphertext IS NOT NULL)",
            name="ck_provider_keys_ciphertext_iff_not_revoked",
        ),
        {"schema": SCHEMA},
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.String(36))
    provider: Mapped[str] = mapped_column(sa.String(20))
    label: Mapped[str | None] = mapped_column(sa.String(100))
    # "v1:<master key fingerprint>:<base64(nonce + AES-GCM ciphertext)>" (keys_service.crypto).
    key_ciphertext: Mapped[str | None] = mapped_column(sa.Text)
    key_mask: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(10), default=ACTIVE)
    last_validated_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(db.Model):
    __tablename__ = "audit_logs"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    action: Mapped[str] = mapped_column(sa.String(32))
    provider: Mapped[str | None] = mapped_column(sa.String(20))
    key_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    # `metadata` is reserved on declarative classes, so the attribute has another name.
    # Only fixed, code-chosen values go in here: outcomes, statuses, reasons. Never key material.
    details: Mapped[dict[str, Any]] = mapped_column("metadata", sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
