"""The key vault: add, list, re-validate, revoke, hand a key to chat, rotate the master key.

Plain functions: no request, one commit per call. The plaintext of a key exists only in local
variables on its way to the provider or to chat_service: it is never logged, never put in an
error, never written to the audit log.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from keys_service.crypto import DecryptionFailed, KeyBinding, KeyCipher, mask_key
from keys_service.errors import KeyCheckUnavailable, KeyInvalid, KeyNotActive, KeyUnreadable
from keys_service.models import ACTIVE, INVALID, REVOKED, SCHEMA, AuditLog, ProviderKey, new_id
from shared.config import Settings
from shared.db import checkpoint_sqlite, db, utcnow
from shared.errors import NotFound
from shared.providers import PROVIDERS, KeyCheck, ProviderAdapter, get_adapter, get_spec

logger = logging.getLogger(__name__)

# Audit actions.
CREATE, VALIDATE, REVOKE, USE_FAILED = "create", "validate", "revoke", "use_failed"
ROTATION_BATCH = 200


@dataclass(frozen=True)
class ResolvedKey:
    """A key handed to chat_service: the row and its plaintext (kept out of the repr)."""

    key: ProviderKey
    api_key: str = field(repr=False)


# --- the provider seam (tests stand in for it) -----------------------------------------------


@functools.lru_cache(maxsize=16)
def _adapter(provider: str, base_url: str, connect_timeout: float, read_timeout: float) -> ProviderAdapter:
    # One adapter (one pooled requests session) per provider configuration, reused across calls.
    return get_adapter(provider, base_url, connect_timeout=connect_timeout, read_timeout=read_timeout)


def validate_with_provider(settings: Settings, provider: str, api_key: str) -> KeyCheck:
    """Ask the provider whether it accepts `api_key` (one lightweight call)."""
    adapter = _adapter(
        provider,
        settings.provider_base_urls[provider],
        settings.provider_connect_timeout,
        settings.provider_read_timeout,
    )
    try:
        return adapter.validate_key(api_key)
    except Exception as exc:  # an adapter bug must not read as "key invalid", nor leak the key
        logger.warning(
            "key validation failed unexpectedly", extra={"provider": provider, "error": type(exc).__name__}
        )
        return KeyCheck.UNAVAILABLE


# --- public operations -----------------------------------------------------------------------


def add_key(settings: Settings, user_id: str, provider: str, api_key: str, label: str | None) -> ProviderKey:
    """Validate with the provider, then store encrypted; 400 key_invalid / 503 and nothing stored."""
    _require_provider(provider)
    outcome = validate_with_provider(settings, provider, api_key)
    if outcome is not KeyCheck.VALID:
        # The attempt is audited (no key id: nothing was stored), the key itself is not.
        _audit(user_id, CREATE, provider, None, outcome=outcome.value)
        db.session.commit()
        logger.info("provider key refused", extra={"provider": provider, "outcome": outcome.value})
        raise KeyInvalid() if outcome is KeyCheck.INVALID else KeyCheckUnavailable()

    key_id = new_id()
    now = utcnow()
    key = ProviderKey(
        id=key_id,
        user_id=user_id,
        provider=provider,
        label=label or None,
        key_ciphertext=KeyCipher.from_settings(settings).encrypt(
            api_key, KeyBinding(user_id, provider, key_id)
        ),
        key_mask=mask_key(api_key, get_spec(provider).mask_head),
        status=ACTIVE,
        last_validated_at=now,
        created_at=now,
    )
    db.session.add(key)
    _audit(user_id, CREATE, provider, key_id, outcome=KeyCheck.VALID.value)
    db.session.commit()
    logger.info("provider key added", extra={"key_id": key_id, "provider": provider})
    return key


def list_keys(user_id: str, provider: str) -> list[ProviderKey]:
    """All of the user's keys for a provider, newest first, whatever their status."""
    _require_provider(provider)
    return list(
        db.session.scalars(
            sa.select(ProviderKey)
            .where(ProviderKey.user_id == user_id, ProviderKey.provider == provider)
            .order_by(ProviderKey.created_at.desc(), ProviderKey.id.desc())
        )
    )


def revalidate_key(settings: Settings, user_id: str, provider: str, key_id: str) -> ProviderKey:
    """Ask the provider again: active or invalid; an outage changes nothing and answers 503."""
    key = _get_own_key(user_id, provider, key_id)
    if key.status == REVOKED:
        raise KeyNotActive("This key was revoked; add it again to use it.")
    api_key = _decrypt(settings, key)
    previous_status = key.status
    # Do not hold a pooled connection (and a transaction) across a slow provider call.
    db.session.rollback()

    outcome = validate_with_provider(settings, provider, api_key)
    if outcome is KeyCheck.UNAVAILABLE:
        _audit(user_id, VALIDATE, provider, key_id, outcome=outcome.value, status=previous_status)
        db.session.commit()
        raise KeyCheckUnavailable()

    new_status = ACTIVE if outcome is KeyCheck.VALID else INVALID
    # Conditional: a key revoked while the provider was answering stays revoked.
    updated = db.session.execute(
        sa.update(ProviderKey)
        .where(ProviderKey.id == key_id, ProviderKey.status != REVOKED)
        .values(status=new_status, last_validated_at=utcnow())
    ).rowcount
    if not updated:
        db.session.rollback()
        raise KeyNotActive("This key was revoked; add it again to use it.")
    _audit(
        user_id,
        VALIDATE,
        provider,
        key_id,
        outcome=outcome.value,
        previousStatus=previous_status,
        status=new_status,
    )
    db.session.commit()
    logger.info("provider key re-validated", extra={"key_id": key_id, "outcome": outcome.value})
    return _reload(key_id)


def revoke_key(user_id: str, provider: str, key_id: str) -> None:
    """Mark the key revoked and destroy its ciphertext; revoking twice is a no-op."""
    key = _get_own_key(user_id, provider, key_id)
    previous_status = key.status
    revoked = db.session.execute(
        sa.update(ProviderKey)
        .where(ProviderKey.id == key.id, ProviderKey.status != REVOKED)
        .values(status=REVOKED, key_ciphertext=None)
    ).rowcount
    if revoked:
        _audit(user_id, REVOKE, provider, key.id, previousStatus=previous_status)
    db.session.commit()
    if revoked:
        checkpoint_sqlite(SCHEMA)  # the old ciphertext must not wait in the WAL file
        logger.info("provider key revoked", extra={"key_id": key.id})


# --- for chat_service ------------------------------------------------------------------------


# lastUsedAt is written at most once per this long: a key used for every message of a busy user
# would otherwise cost a write (and a commit) per message.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def decrypt_key_for_chat(settings: Settings, user_id: str, provider: str, key_id: str | None) -> ResolvedKey:
    """The plaintext of the user's active key (the given one, or the most recently validated).

    404 when the given key is not this user's key for this provider; 409 key_not_active when it is
    not active or there is no active key at all. Records the use.
    """
    _require_provider(provider)
    if key_id is None:
        key = db.session.scalar(
            sa.select(ProviderKey)
            .where(
                ProviderKey.user_id == user_id,
                ProviderKey.provider == provider,
                ProviderKey.status == ACTIVE,
            )
            .order_by(
                ProviderKey.last_validated_at.desc().nulls_last(),
                ProviderKey.created_at.desc(),
                ProviderKey.id.desc(),
            )
            .limit(1)
        )
        if key is None:
            raise KeyNotActive()
    else:
        key = _get_own_key(user_id, provider, key_id)
        if key.status != ACTIVE:
            raise KeyNotActive(f"This key is {key.status}; re-validate it or use another key.")

    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        # Used within the minute: no write (one per message would be most of this call's cost).
        # The query that just found the key saw it active, as the UPDATE below would have.
        return ResolvedKey(key=key, api_key=_decrypt(settings, key, key.key_ciphertext))
    # One statement both records the use and re-checks the status, so a key revoked a moment ago
    # is never handed out.
    ciphertext = db.session.scalar(
        sa.update(ProviderKey)
        .where(ProviderKey.id == key.id, ProviderKey.status == ACTIVE)
        .values(last_used_at=now)
        .returning(ProviderKey.key_ciphertext)
    )
    if ciphertext is None:
        db.session.rollback()
        raise KeyNotActive()
    api_key = _decrypt(settings, key, ciphertext)
    db.session.commit()
    return ResolvedKey(key=_reload(key.id), api_key=api_key)


def record_use_failure(user_id: str, key_id: str, reason: str, mark_invalid: bool) -> ProviderKey:
    """Audit a failed use of a key; with `mark_invalid`, an active key becomes invalid."""
    key = db.session.scalar(
        sa.select(ProviderKey).where(ProviderKey.id == key_id, ProviderKey.user_id == user_id)
    )
    if key is None:
        raise NotFound("No such key.")
    previous_status = key.status
    if mark_invalid:
        # Only an active key changes: a revoked key must stay revoked.
        db.session.execute(
            sa.update(ProviderKey)
            .where(ProviderKey.id == key.id, ProviderKey.status == ACTIVE)
            .values(status=INVALID)
        )
    _audit(
        user_id,
        USE_FAILED,
        key.provider,
        key.id,
        reason=reason,
        markInvalid=mark_invalid,
        previousStatus=previous_status,
    )
    db.session.commit()
    logger.info("provider key use failed", extra={"key_id": key.id, "reason": reason})
    return _reload(key.id)


# --- master key rotation ---------------------------------------------------------------------


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did: rows re-encrypted, already current, and not readable with either key."""

    reencrypted: int = 0
    already_current: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.reencrypted + self.already_current + self.failed


def rotate_master_key(settings: Settings) -> RotationReport:
    """Re-encrypt every stored key under APP_ENCRYPTION_KEY (reading old rows with _PREVIOUS).

    Idempotent: rows already under the current key are left alone. Rows that neither key opens are
    counted as failed and left as they are. Needs an app context.
    """
    cipher = KeyCipher.from_settings(settings)
    reencrypted = already_current = failed = 0
    last_id = ""
    while True:
        rows = db.session.execute(
            sa.select(ProviderKey.id, ProviderKey.user_id, ProviderKey.provider, ProviderKey.key_ciphertext)
            .where(ProviderKey.key_ciphertext.is_not(None), ProviderKey.id > last_id)
            .order_by(ProviderKey.id)
            .limit(ROTATION_BATCH)
        ).all()
        if not rows:
            break
        for key_id, user_id, provider, ciphertext in rows:
            binding = KeyBinding(user_id, provider, key_id)
            try:
                if cipher.is_current(ciphertext):
                    already_current += 1
                    continue
                new_ciphertext = cipher.encrypt(cipher.decrypt(ciphertext, binding), binding)
            except DecryptionFailed:
                failed += 1
                logger.error("rotation: a key could not be decrypted", extra={"key_id": key_id})
                continue
            # Compare-and-swap: a key revoked meanwhile keeps its NULL ciphertext.
            db.session.execute(
                sa.update(ProviderKey)
                .where(ProviderKey.id == key_id, ProviderKey.key_ciphertext == ciphertext)
                .values(key_ciphertext=new_ciphertext)
            )
            reencrypted += 1
        db.session.commit()
        last_id = rows[-1][0]
    report = RotationReport(reencrypted, already_current, failed)
    logger.info(
        "master key rotation finished",
        extra={"reencrypted": reencrypted, "already_current": already_current, "failed": failed},
    )
    return report


# --- helpers ---------------------------------------------------------------------------------


def _require_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise NotFound("No such provider.")


def _get_own_key(user_id: str, provider: str, key_id: str) -> ProviderKey:
    """The user's key for this provider; 404 for anything else (another user's key included)."""
    _require_provider(provider)
    key = db.session.scalar(
        sa.select(ProviderKey).where(
            ProviderKey.id == key_id, ProviderKey.user_id == user_id, ProviderKey.provider == provider
        )
    )
    if key is None:
        raise NotFound("No such key.")
    return key


def _reload(key_id: str) -> ProviderKey:
    return db.session.get_one(ProviderKey, key_id, populate_existing=True)


def _decrypt(settings: Settings, key: ProviderKey, ciphertext: str | None = None) -> str:
    """The plaintext of `key`; on failure, roll back, audit `use_failed`, answer a bare 500."""
    ciphertext = ciphertext or key.key_ciphertext
    try:
        if ciphertext is None:
            raise DecryptionFailed()
        return KeyCipher.from_settings(settings).decrypt(
            ciphertext, KeyBinding(key.user_id, key.provider, key.id)
        )
    except DecryptionFailed:
        key_id, user_id, provider = key.id, key.user_id, key.provider
        db.session.rollback()
        _audit(user_id, USE_FAILED, provider, key_id, reason="decryption_failed", markInvalid=False)
        db.session.commit()
        logger.error("a stored provider key could not be decrypted", extra={"key_id": key_id})
        raise KeyUnreadable() from None


def _audit(user_id: str, action: str, provider: str | None, key_id: str | None, **details: Any) -> None:
    """Add an audit row to the current unit of work. Callers pass only code-chosen values."""
    db.session.add(
        AuditLog(user_id=user_id, action=action, provider=provider, key_id=key_id, details=details)
    )
