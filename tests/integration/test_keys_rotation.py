"""Master-key rotation (`rotate_master_key`, `python -m keys_service.rotate`) on a real database."""

from __future__ import annotations

import dataclasses
import secrets
import uuid

import pytest
import sqlalchemy as sa

from keys_service import rotate, services
from keys_service.app import create_app
from keys_service.crypto import master_key_fingerprint
from keys_service.models import ProviderKey
from shared.db import db
from shared.providers import KeyCheck
from tests.integration.conftest import ServiceCaller, migrated_app


@pytest.fixture(autouse=True)
def provider(monkeypatch):
    monkeypatch.setattr(
        services, "validate_with_provider", lambda settings, provider, api_key: KeyCheck.VALID
    )


@pytest.fixture
def old_settings(settings_for):
    return settings_for()


@pytest.fixture
def stored_keys(old_settings) -> dict[str, tuple[str, str, str]]:
    """Keys of two users on three providers under the old master key: id -> (user, provider, plaintext).

    One more key is revoked, so it has no ciphertext to rotate.
    """
    app = migrated_app(create_app, old_settings)
    keys = ServiceCaller(app, "keys")
    stored = {}
    for user in (str(uuid.uuid4()), str(uuid.uuid4())):
        for provider in ("openai", "anthropic", "groq"):
            api_key = f"sk-{provider}-" + secrets.token_urlsafe(30)
            response = keys.post(f"/api/providers/{provider}/keys", user_id=user, json={"apiKey": api_key})
            stored[response.get_json()["key"]["id"]] = (user, provider, api_key)
    revoked = keys.post("/api/providers/openai/keys", user_id=user, json={"apiKey": "sk-" + "r" * 40})
    keys.delete(f"/api/providers/openai/keys/{revoked.get_json()['key']['id']}", user_id=user)
    return stored


def with_master_keys(settings, current: bytes, previous: bytes | None):
    return dataclasses.replace(settings, encryption_key=current, encryption_key_previous=previous)


def rotate_with(settings) -> services.RotationReport:
    with create_app(settings).app_context():
        return services.rotate_master_key(settings)


def ciphertexts(settings) -> dict[str, str | None]:
    with create_app(settings).app_context():
        return dict(db.session.execute(sa.select(ProviderKey.id, ProviderKey.key_ciphertext)).all())


def resolved_plaintexts(settings, stored) -> dict[str, str]:
    keys = ServiceCaller(create_app(settings), "keys")
    plaintexts = {}
    for key_id, (user, provider, _) in stored.items():
        response = keys.post(
            "/internal/keys/resolve",
            user_id=user,
            caller="chat",
            json={"provider": provider, "keyId": key_id},
        )
        assert response.status_code == 200, response.get_json()
        plaintexts[key_id] = response.get_json()["apiKey"]
    return plaintexts


def test_rotation_reencrypts_every_row_and_the_old_key_is_no_longer_needed(old_settings, stored_keys):
    new_key = secrets.token_bytes(32)
    rotating = with_master_keys(old_settings, new_key, old_settings.encryption_key)

    report = rotate_with(rotating)

    assert (report.reencrypted, report.already_current, report.failed) == (len(stored_keys), 0, 0)
    after = ciphertexts(rotating)
    new_fingerprint = master_key_fingerprint(new_key)
    assert all(after[key_id].split(":")[1] == new_fingerprint for key_id in stored_keys)
    assert [value for key_id, value in after.items() if key_id not in stored_keys] == [None]

    rotated = with_master_keys(old_settings, new_key, None)  # APP_ENCRYPTION_KEY_PREVIOUS unset
    expected = {key_id: api_key for key_id, (_, _, api_key) in stored_keys.items()}
    assert resolved_plaintexts(rotated, stored_keys) == expected


def test_rotation_is_idempotent(old_settings, stored_keys):
    rotating = with_master_keys(old_settings, secrets.token_bytes(32), old_settings.encryption_key)
    rotate_with(rotating)
    before = ciphertexts(rotating)

    again = rotate_with(rotating)

    assert (again.reencrypted, again.already_current, again.failed) == (0, len(stored_keys), 0)
    assert ciphertexts(rotating) == before


def test_rotation_without_the_previous_key_reports_failures_and_changes_nothing(old_settings, stored_keys):
    before = ciphertexts(old_settings)
    forgot_previous = with_master_keys(old_settings, secrets.token_bytes(32), None)

    report = rotate_with(forgot_previous)

    assert (report.reencrypted, report.already_current, report.failed) == (0, 0, len(stored_keys))
    assert ciphertexts(old_settings) == before
    assert len(resolved_plaintexts(old_settings, stored_keys)) == len(stored_keys)


def test_rotate_command_prints_counts_and_exit_status(old_settings, stored_keys, monkeypatch, capsys):
    rotating = with_master_keys(old_settings, secrets.token_bytes(32), old_settings.encryption_key)
    monkeypatch.setattr(rotate, "load_settings", lambda **_: rotating)

    assert rotate.main() == 0
    assert f"re-encrypted: {len(stored_keys)}" in capsys.readouterr().out

    # Now the rows are under another key.
    monkeypatch.setattr(rotate, "load_settings", lambda **_: old_settings)
    assert rotate.main() == 1
    assert f"failed: {len(stored_keys)}" in capsys.readouterr().out
