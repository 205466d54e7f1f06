"""keys_service in process on a real database (SQLite and Postgres); only the provider is faked."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from keys_service import services
from keys_service.app import create_app
from keys_service.models import AuditLog, ProviderKey
from shared.db import db
from shared.providers import KeyCheck
from tests.integration.conftest import ServiceCaller, migrated_app

KEY_FIELDS = {"id", "provider", "label", "keyMask", "status", "lastValidatedAt", "lastUsedAt", "createdAt"}


class FakeProvider:
    """Stands in for validate_with_provider: VALID unless told otherwise, per key or for all."""

    def __init__(self):
        self.answers: dict[str, KeyCheck] = {}
        self.default = KeyCheck.VALID
        self.calls = 0

    def __call__(self, settings, provider, api_key):
        self.calls += 1
        return self.answers.get(api_key, self.default)


@pytest.fixture
def app(settings_for):
    return migrated_app(create_app, settings_for())


@pytest.fixture
def keys(app) -> ServiceCaller:
    return ServiceCaller(app, "keys")


@pytest.fixture(autouse=True)
def provider(monkeypatch) -> FakeProvider:
    fake = FakeProvider()
    monkeypatch.setattr(services, "validate_with_provider", fake)
    return fake


def new_user() -> str:
    return str(uuid.uuid4())


def new_api_key(prefix: str = "sk-proj-") -> str:
    return prefix + secrets.token_urlsafe(33)


def add_key(keys: ServiceCaller, user_id: str, api_key: str, provider: str = "openai", **body) -> dict:
    response = keys.post(f"/api/providers/{provider}/keys", user_id=user_id, json={"apiKey": api_key, **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


def resolve(keys: ServiceCaller, user_id: str, provider: str = "openai", key_id=None, caller="chat"):
    return keys.post(
        "/internal/keys/resolve", user_id=user_id, caller=caller, json={"provider": provider, "keyId": key_id}
    )


def stored_key(app, key_id: str) -> ProviderKey | None:
    with app.app_context():
        key = db.session.get(ProviderKey, key_id)
        if key is not None:
            db.session.expunge(key)
        return key


def provider_key_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(ProviderKey))


def audit_rows(app, **filters) -> list[AuditLog]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                sa.select(AuditLog).filter_by(**filters).order_by(AuditLog.created_at, AuditLog.id)
            )
        )
        db.session.expunge_all()
        return rows


def dump_every_row(app) -> str:
    """Every row of every table in the keys schema (reflected, so no table is missed), as text."""
    with app.app_context():
        dumped = []
        with db.engine.connect() as connection:
            for name in sa.inspect(connection).get_table_names(schema="keys"):
                table = sa.Table(name, sa.MetaData(), schema="keys", autoload_with=connection)
                dumped.extend(f"{name}: {tuple(row)!r}" for row in connection.execute(sa.select(table)))
        return "\n".join(dumped)


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code
    assert set(error) <= {"code", "message", "retryable", "details"}
    return error


# --- adding keys ------------------------------------------------------------------------------


def test_add_valid_key_stores_it_encrypted_active_and_masked(app, keys, provider):
    user, api_key = new_user(), new_api_key()
    response = keys.post(
        "/api/providers/openai/keys", user_id=user, json={"apiKey": api_key, "label": "work"}
    )

    assert response.status_code == 201
    key = response.get_json()["key"]
    assert set(key) == KEY_FIELDS
    assert key["provider"] == "openai"
    assert key["label"] == "work"
    assert key["status"] == "active"
    assert key["keyMask"] == f"sk-...{api_key[-4:]}"
    assert key["lastValidatedAt"].endswith("Z")
    assert key["createdAt"].endswith("Z")
    assert key["lastUsedAt"] is None
    assert api_key not in response.get_data(as_text=True)
    assert provider.calls == 1

    row = stored_key(app, key["id"])
    assert row.user_id == user
    assert row.key_ciphertext.startswith("v1:")
    assert api_key not in row.key_ciphertext
    assert row.last_validated_at is not None


def test_add_key_strips_surrounding_whitespace(keys):
    user, api_key = new_user(), new_api_key()
    key = add_key(keys, user, f"  {api_key}\n")
    assert resolve(keys, user, key_id=key["id"]).get_json()["apiKey"] == api_key


def test_add_key_without_label_has_null_label(keys):
    assert add_key(keys, new_user(), new_api_key(), label="   ")["label"] is None
    assert add_key(keys, new_user(), new_api_key())["label"] is None


def test_add_key_rejected_by_provider_is_400_and_stores_nothing(app, keys, provider):
    api_key = new_api_key()
    provider.answers[api_key] = KeyCheck.INVALID
    response = keys.post("/api/providers/openai/keys", user_id=new_user(), json={"apiKey": api_key})

    error = assert_envelope(response, 400, "key_invalid")
    assert error["retryable"] is False
    assert api_key not in response.get_data(as_text=True)
    assert provider_key_count(app) == 0


def test_add_key_while_provider_is_down_is_503_retryable_and_stores_nothing(app, keys, provider):
    provider.default = KeyCheck.UNAVAILABLE
    response = keys.post("/api/providers/anthropic/keys", user_id=new_user(), json={"apiKey": new_api_key()})

    error = assert_envelope(response, 503, "upstream_unavailable")
    assert error["retryable"] is True
    assert provider_key_count(app) == 0


def test_list_shows_every_status_newest_first_and_only_this_provider(keys, provider):
    user = new_user()
    first = add_key(keys, user, new_api_key())
    second_key = new_api_key()
    second = add_key(keys, user, second_key)
    third = add_key(keys, user, new_api_key())
    add_key(keys, user, new_api_key("gsk_"), provider="groq")
    keys.delete(f"/api/providers/openai/keys/{first['id']}", user_id=user)
    provider.answers[second_key] = KeyCheck.INVALID
    keys.post(f"/api/providers/openai/keys/{second['id']}/validate", user_id=user)

    response = keys.get("/api/providers/openai/keys", user_id=user)

    assert response.status_code == 200
    listed = response.get_json()["keys"]
    assert [k["id"] for k in listed] == [third["id"], second["id"], first["id"]]
    assert [k["status"] for k in listed] == ["active", "invalid", "revoked"]
    assert all(set(k) == KEY_FIELDS for k in listed)


# --- re-validating ----------------------------------------------------------------------------


def test_revalidate_marks_key_invalid_after_upstream_revocation_then_active_again(app, keys, provider):
    user, api_key = new_user(), new_api_key()
    key = add_key(keys, user, api_key)
    validated_at = stored_key(app, key["id"]).last_validated_at
    path = f"/api/providers/openai/keys/{key['id']}/validate"

    provider.answers[api_key] = KeyCheck.INVALID
    response = keys.post(path, user_id=user)
    assert response.status_code == 200
    assert response.get_json()["key"]["status"] == "invalid"
    assert stored_key(app, key["id"]).last_validated_at > validated_at

    provider.answers[api_key] = KeyCheck.VALID
    assert keys.post(path, user_id=user).get_json()["key"]["status"] == "active"


@pytest.mark.parametrize("status_before", ["active", "invalid"])
def test_outage_during_revalidate_leaves_status_alone_and_answers_503(app, keys, provider, status_before):
    user, api_key = new_user(), new_api_key()
    key = add_key(keys, user, api_key)
    path = f"/api/providers/openai/keys/{key['id']}/validate"
    if status_before == "invalid":
        provider.answers[api_key] = KeyCheck.INVALID
        keys.post(path, user_id=user)
    before = stored_key(app, key["id"])

    provider.answers[api_key] = KeyCheck.UNAVAILABLE
    response = keys.post(path, user_id=user)

    error = assert_envelope(response, 503, "upstream_unavailable")
    assert error["retryable"] is True
    after = stored_key(app, key["id"])
    assert after.status == status_before
    assert after.last_validated_at == before.last_validated_at


def test_revalidate_of_revoked_key_is_409_without_calling_the_provider(keys, provider):
    user = new_user()
    key = add_key(keys, user, new_api_key())
    keys.delete(f"/api/providers/openai/keys/{key['id']}", user_id=user)
    calls = provider.calls

    response = keys.post(f"/api/providers/openai/keys/{key['id']}/validate", user_id=user)

    assert_envelope(response, 409, "key_not_active")
    assert provider.calls == calls


# --- revoking ---------------------------------------------------------------------------------


def test_revoke_destroys_ciphertext_and_later_resolve_is_refused(app, keys):
    user, api_key = new_user(), new_api_key()
    key = add_key(keys, user, api_key)

    response = keys.delete(f"/api/providers/openai/keys/{key['id']}", user_id=user)

    assert response.status_code == 204
    assert response.get_data() == b""
    row = stored_key(app, key["id"])
    assert row.status == "revoked"
    assert row.key_ciphertext is None
    assert_envelope(resolve(keys, user, key_id=key["id"]), 409, "key_not_active")
    assert_envelope(resolve(keys, user), 409, "key_not_active")
    assert api_key not in dump_every_row(app)


def test_revoking_twice_is_204_and_audited_once(app, keys):
    user = new_user()
    key = add_key(keys, user, new_api_key())
    for _ in range(2):
        assert keys.delete(f"/api/providers/openai/keys/{key['id']}", user_id=user).status_code == 204
    assert len(audit_rows(app, key_id=key["id"], action="revoke")) == 1


# --- isolation between users and providers ----------------------------------------------------


def user_b_requests(key_id: str):
    """Every endpoint aimed at a key that is not user B's: (method, path, caller, json)."""
    return [
        ("POST", f"/api/providers/openai/keys/{key_id}/validate", "gateway", None),
        ("DELETE", f"/api/providers/openai/keys/{key_id}", "gateway", None),
        ("POST", "/internal/keys/resolve", "chat", {"provider": "openai", "keyId": key_id}),
        (
            "POST",
            f"/internal/keys/{key_id}/use-failed",
            "chat",
            {"reason": "auth_failed", "markInvalid": True},
        ),
    ]


def test_another_users_key_is_404_on_every_endpoint_and_left_untouched(app, keys, provider):
    user_a, user_b = new_user(), new_user()
    key = add_key(keys, user_a, new_api_key())
    calls = provider.calls

    for method, path, caller, body in user_b_requests(key["id"]):
        response = keys.open(method, path, user_id=user_b, caller=caller, json=body)
        assert_envelope(response, 404, "not_found")

    assert keys.get("/api/providers/openai/keys", user_id=user_b).get_json() == {"keys": []}
    row = stored_key(app, key["id"])
    assert (row.status, row.last_used_at) == ("active", None)
    assert row.key_ciphertext is not None
    assert provider.calls == calls
    assert audit_rows(app, user_id=user_b) == []


def test_a_key_under_another_providers_path_is_404(keys):
    user = new_user()
    key = add_key(keys, user, new_api_key())
    assert_envelope(keys.delete(f"/api/providers/groq/keys/{key['id']}", user_id=user), 404, "not_found")
    assert_envelope(resolve(keys, user, provider="groq", key_id=key["id"]), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/providers/no-such-provider/keys"),
        ("POST", "/api/providers/no-such-provider/keys"),
        ("POST", "/api/providers/OpenAI/keys"),
        ("POST", "/api/providers/no-such-provider/keys/some-id/validate"),
        ("DELETE", "/api/providers/no-such-provider/keys/some-id"),
    ],
)
def test_unknown_provider_is_404(keys, provider, method, path):
    response = keys.open(method, path, user_id=new_user(), json={"apiKey": new_api_key()})
    assert_envelope(response, 404, "not_found")
    assert provider.calls == 0


def test_public_endpoints_need_a_user_in_the_credential(keys):
    response = keys.get("/api/providers/openai/keys")
    assert_envelope(response, 401, "unauthenticated")


def test_requests_without_an_internal_credential_are_401(app):
    response = app.test_client().get("/api/providers/openai/keys")
    assert_envelope(response, 401, "unauthenticated")


# --- chat_service's internal endpoints --------------------------------------------------------


# The gateway is a caller keys accepts, but not for these (403); auth, quota and keys itself are no
# callers of keys: their own signed credentials are refused before any route (401).
@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("gateway", 403, "forbidden"),
        ("auth", 401, "unauthenticated"),
        ("quota", 401, "unauthenticated"),
        ("keys", 401, "unauthenticated"),
    ],
)
def test_internal_endpoints_refuse_every_caller_but_chat(app, keys, caller, status, code):
    user, api_key = new_user(), new_api_key()
    key = add_key(keys, user, api_key)

    resolved = resolve(keys, user, key_id=key["id"], caller=caller)
    failed = keys.post(
        f"/internal/keys/{key['id']}/use-failed",
        user_id=user,
        caller=caller,
        json={"reason": "auth_failed", "markInvalid": True},
    )

    for response in (resolved, failed):
        assert_envelope(response, status, code)
        assert api_key not in response.get_data(as_text=True)
    row = stored_key(app, key["id"])
    assert (row.status, row.last_used_at) == ("active", None)


def test_resolve_from_chat_returns_plaintext_and_records_last_use(app, keys):
    user, api_key = new_user(), new_api_key()
    key = add_key(keys, user, api_key, label="personal")

    response = resolve(keys, user, key_id=key["id"])

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"key", "apiKey"}
    assert body["apiKey"] == api_key
    assert set(body["key"]) == KEY_FIELDS
    assert body["key"]["id"] == key["id"]
    assert body["key"]["lastUsedAt"].endswith("Z")
    assert stored_key(app, key["id"]).last_used_at is not None


def test_last_use_is_written_at_most_once_a_minute(app, keys):
    user, api_key = new_user(), new_api_key()
    key = add_key(keys, user, api_key)
    assert resolve(keys, user, key_id=key["id"]).status_code == 200
    first = stored_key(app, key["id"]).last_used_at

    again = resolve(keys, user, key_id=key["id"])
    assert again.status_code == 200 and again.get_json()["apiKey"] == api_key
    assert stored_key(app, key["id"]).last_used_at == first  # no write within the minute

    with app.app_context():  # a minute and more later
        db.session.execute(
            sa.update(ProviderKey)
            .where(ProviderKey.id == key["id"])
            .values(last_used_at=first - timedelta(minutes=2))
        )
        db.session.commit()
    assert resolve(keys, user, key_id=key["id"]).status_code == 200
    assert stored_key(app, key["id"]).last_used_at > first - timedelta(minutes=1)


def test_a_key_revoked_after_its_last_use_is_refused_within_the_minute(keys):
    user = new_user()
    key = add_key(keys, user, new_api_key())
    assert resolve(keys, user, key_id=key["id"]).status_code == 200
    assert keys.delete(f"/api/providers/openai/keys/{key['id']}", user_id=user).status_code == 204
    assert resolve(keys, user, key_id=key["id"]).status_code == 409
    assert resolve(keys, user).status_code == 409


def test_resolve_without_key_id_picks_the_most_recently_validated_active_key(keys, provider):
    user = new_user()
    older = add_key(keys, user, new_api_key())
    newer_key = new_api_key()
    newer = add_key(keys, user, newer_key)
    add_key(keys, user, new_api_key("gsk_"), provider="groq")

    assert resolve(keys, user).get_json()["key"]["id"] == newer["id"]

    keys.post(f"/api/providers/openai/keys/{older['id']}/validate", user_id=user)
    assert resolve(keys, user).get_json()["key"]["id"] == older["id"]

    provider.answers[newer_key] = KeyCheck.INVALID
    keys.post(f"/api/providers/openai/keys/{newer['id']}/validate", user_id=user)
    keys.delete(f"/api/providers/openai/keys/{older['id']}", user_id=user)
    assert_envelope(resolve(keys, user), 409, "key_not_active")


def test_resolve_with_no_key_at_all_is_409(keys):
    response = keys.post(
        "/internal/keys/resolve", user_id=new_user(), caller="chat", json={"provider": "gemini"}
    )
    assert_envelope(response, 409, "key_not_active")


def test_resolve_of_an_invalid_key_is_409(keys, provider):
    user, api_key = new_user(), new_api_key()
    key = add_key(keys, user, api_key)
    provider.answers[api_key] = KeyCheck.INVALID
    keys.post(f"/api/providers/openai/keys/{key['id']}/validate", user_id=user)
    assert_envelope(resolve(keys, user, key_id=key["id"]), 409, "key_not_active")


def test_resolve_of_a_ciphertext_moved_to_another_row_is_500_audited_and_secret_free(app, keys, caplog):
    user, first_key, second_key = new_user(), new_api_key(), new_api_key()
    first, second = add_key(keys, user, first_key), add_key(keys, user, second_key)
    with app.app_context():
        moved = db.session.get(ProviderKey, first["id"]).key_ciphertext
        db.session.execute(
            sa.update(ProviderKey).where(ProviderKey.id == second["id"]).values(key_ciphertext=moved)
        )
        db.session.commit()

    with caplog.at_level(logging.DEBUG):
        response = resolve(keys, user, key_id=second["id"])

    error = assert_envelope(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert first_key not in text and second_key not in text and "decrypt" not in error["message"].lower()
    assert stored_key(app, second["id"]).last_used_at is None
    [failure] = audit_rows(app, key_id=second["id"], action="use_failed")
    assert failure.details["reason"] == "decryption_failed"
    assert any("could not be decrypted" in record.getMessage() for record in caplog.records)


def test_use_failed_with_mark_invalid_marks_the_key_invalid_and_audits(app, keys):
    user = new_user()
    key = add_key(keys, user, new_api_key())

    response = keys.post(
        f"/internal/keys/{key['id']}/use-failed",
        user_id=user,
        caller="chat",
        json={"reason": "auth_failed", "markInvalid": True},
    )

    assert response.status_code == 200
    assert response.get_json()["key"]["status"] == "invalid"
    assert stored_key(app, key["id"]).status == "invalid"
    [entry] = audit_rows(app, key_id=key["id"], action="use_failed")
    assert entry.user_id == user
    assert entry.provider == "openai"
    assert entry.details == {"reason": "auth_failed", "markInvalid": True, "previousStatus": "active"}
    assert_envelope(resolve(keys, user, key_id=key["id"]), 409, "key_not_active")


def test_use_failed_without_mark_invalid_keeps_the_key_active(app, keys):
    user = new_user()
    key = add_key(keys, user, new_api_key())
    response = keys.post(
        f"/internal/keys/{key['id']}/use-failed", user_id=user, caller="chat", json={"reason": "rate_limited"}
    )
    assert response.get_json()["key"]["status"] == "active"
    assert audit_rows(app, key_id=key["id"], action="use_failed")[0].details["markInvalid"] is False


def test_use_failed_never_brings_a_revoked_key_back(app, keys):
    user = new_user()
    key = add_key(keys, user, new_api_key())
    keys.delete(f"/api/providers/openai/keys/{key['id']}", user_id=user)
    response = keys.post(
        f"/internal/keys/{key['id']}/use-failed",
        user_id=user,
        caller="chat",
        json={"reason": "auth_failed", "markInvalid": True},
    )
    assert response.get_json()["key"]["status"] == "revoked"
    assert stored_key(app, key["id"]).key_ciphertext is None


# --- the audit log ----------------------------------------------------------------------------


def test_every_action_writes_an_audit_row(app, keys, provider):
    user, api_key = new_user(), new_api_key()
    rejected, unreachable = new_api_key(), new_api_key()
    provider.answers.update({rejected: KeyCheck.INVALID, unreachable: KeyCheck.UNAVAILABLE})
    keys.post("/api/providers/openai/keys", user_id=user, json={"apiKey": rejected})
    keys.post("/api/providers/openai/keys", user_id=user, json={"apiKey": unreachable})
    key = add_key(keys, user, api_key)
    validate_path = f"/api/providers/openai/keys/{key['id']}/validate"
    keys.post(validate_path, user_id=user)
    provider.answers[api_key] = KeyCheck.UNAVAILABLE
    keys.post(validate_path, user_id=user)
    provider.answers[api_key] = KeyCheck.INVALID
    keys.post(validate_path, user_id=user)
    keys.post(
        f"/internal/keys/{key['id']}/use-failed",
        user_id=user,
        caller="chat",
        json={"reason": "upstream_error"},
    )
    keys.delete(f"/api/providers/openai/keys/{key['id']}", user_id=user)

    entries = [
        (row.action, row.key_id, row.details.get("outcome"), row.provider, row.user_id)
        for row in audit_rows(app, user_id=user)
    ]
    kid = key["id"]
    assert entries == [
        ("create", None, "invalid", "openai", user),
        ("create", None, "unavailable", "openai", user),
        ("create", kid, "valid", "openai", user),
        ("validate", kid, "valid", "openai", user),
        ("validate", kid, "unavailable", "openai", user),
        ("validate", kid, "invalid", "openai", user),
        ("use_failed", kid, None, "openai", user),
        ("revoke", kid, None, "openai", user),
    ]


# --- bad input --------------------------------------------------------------------------------

SOME_KEY = "sk-proj-" + "Qw3rTy" * 6
ADD = "/api/providers/openai/keys"
RESOLVE = "/internal/keys/resolve"
USE_FAILED = f"/internal/keys/{uuid.uuid4()}/use-failed"
MALFORMED = (400, "invalid_json")
INVALID = (400, "validation_error")


def body(**fields) -> dict:
    return {"json": fields}


def raw(data, content_type: str = "application/json") -> dict:
    return {"data": data, "content_type": content_type}


BAD_INPUT = [
    pytest.param(ADD, raw("{not json"), MALFORMED, id="add-malformed-json"),
    pytest.param(ADD, raw(SOME_KEY, "text/plain"), MALFORMED, id="add-not-json"),
    pytest.param(ADD, {"json": [SOME_KEY]}, MALFORMED, id="add-array"),
    pytest.param(ADD, {"json": SOME_KEY}, MALFORMED, id="add-string"),
    pytest.param(ADD, body(), INVALID, id="add-missing-key"),
    pytest.param(ADD, body(apiKey=None), INVALID, id="add-null-key"),
    pytest.param(ADD, body(apiKey=12345678901234), INVALID, id="add-number-key"),
    pytest.param(ADD, body(apiKey=[SOME_KEY]), INVALID, id="add-list-key"),
    pytest.param(ADD, body(apiKey={"k": SOME_KEY}), INVALID, id="add-object-key"),
    pytest.param(ADD, body(apiKey="   "), INVALID, id="add-blank-key"),
    pytest.param(ADD, body(apiKey=SOME_KEY[:10] + " " + SOME_KEY[10:]), INVALID, id="add-space-inside"),
    pytest.param(ADD, body(apiKey=SOME_KEY[:10] + "\t" + SOME_KEY[10:]), INVALID, id="add-tab-inside"),
    pytest.param(ADD, body(apiKey=SOME_KEY + "é"), INVALID, id="add-non-ascii"),
    # A NUL can never be stored in Postgres text: every service refuses it as unreadable JSON.
    pytest.param(ADD, body(apiKey=SOME_KEY + "\x00"), MALFORMED, id="add-nul"),
    pytest.param(ADD, body(apiKey="x" * 501), INVALID, id="add-key-too-long"),
    pytest.param(ADD, body(apiKey="x" * 2_000_000), (413, "request_too_large"), id="add-huge-key"),
    pytest.param(ADD, body(apiKey=SOME_KEY, label="x" * 101), INVALID, id="add-label-too-long"),
    pytest.param(ADD, body(apiKey=SOME_KEY, label=7), INVALID, id="add-number-label"),
    pytest.param(ADD, body(apiKey=SOME_KEY, label=f"my {SOME_KEY}"), INVALID, id="add-key-in-label"),
    pytest.param(ADD, body(apiKey=SOME_KEY, userId="someone"), INVALID, id="add-unknown-field"),
    pytest.param(ADD, body(apiKey=SOME_KEY, status="active"), INVALID, id="add-status-field"),
    pytest.param(RESOLVE, raw("{"), MALFORMED, id="resolve-malformed-json"),
    pytest.param(RESOLVE, body(), INVALID, id="resolve-missing-provider"),
    pytest.param(RESOLVE, body(provider="no-such-provider"), INVALID, id="resolve-unknown-provider"),
    pytest.param(RESOLVE, body(provider=["openai"]), INVALID, id="resolve-list-provider"),
    pytest.param(RESOLVE, body(provider="openai", keyId=5), INVALID, id="resolve-number-key-id"),
    pytest.param(RESOLVE, body(provider="openai", keyId="k" * 65), INVALID, id="resolve-long-key-id"),
    pytest.param(RESOLVE, body(provider="openai", userId="x"), INVALID, id="resolve-unknown-field"),
    pytest.param(USE_FAILED, body(), INVALID, id="use-failed-missing-reason"),
    pytest.param(USE_FAILED, body(reason=3), INVALID, id="use-failed-number-reason"),
    pytest.param(USE_FAILED, body(reason=SOME_KEY), INVALID, id="use-failed-key-as-reason"),
    pytest.param(
        USE_FAILED, body(reason="auth_failed", markInvalid="perhaps"), INVALID, id="use-failed-bad-bool"
    ),
    pytest.param(USE_FAILED, body(reason="auth_failed", extra=1), INVALID, id="use-failed-unknown-field"),
]


@pytest.mark.parametrize(("path", "request_kwargs", "expected"), BAD_INPUT)
def test_bad_input_gets_a_4xx_envelope_never_a_500(app, keys, provider, path, request_kwargs, expected):
    caller = "chat" if path.startswith("/internal/") else "gateway"
    response = keys.post(path, user_id=new_user(), caller=caller, **request_kwargs)

    error = assert_envelope(response, *expected)
    assert error["retryable"] is False
    assert SOME_KEY not in response.get_data(as_text=True)
    assert provider.calls == 0
    assert provider_key_count(app) == 0
    if expected == INVALID:
        assert error["details"]["fields"]


def test_wrong_method_is_a_405_envelope(keys):
    response = keys.open("PUT", "/api/providers/openai/keys", user_id=new_user())
    assert_envelope(response, 405, "method_not_allowed")


# --- the plaintext never leaves the vault except to chat -------------------------------------


def test_plaintext_appears_in_no_row_response_or_log_line_after_every_operation(app, keys, provider, caplog):
    user, api_key = new_user(), new_api_key()
    rejected = new_api_key()
    provider.answers[rejected] = KeyCheck.INVALID
    responses = []

    with caplog.at_level(logging.DEBUG):
        responses.append(keys.post("/api/providers/openai/keys", user_id=user, json={"apiKey": rejected}))
        key = keys.post("/api/providers/openai/keys", user_id=user, json={"apiKey": api_key, "label": "x"})
        responses.append(key)
        key_id = key.get_json()["key"]["id"]
        responses.append(keys.get("/api/providers/openai/keys", user_id=user))
        responses.append(keys.post(f"/api/providers/openai/keys/{key_id}/validate", user_id=user))
        provider.answers[api_key] = KeyCheck.UNAVAILABLE
        responses.append(keys.post(f"/api/providers/openai/keys/{key_id}/validate", user_id=user))
        provider.answers[api_key] = KeyCheck.VALID
        chat_view = resolve(keys, user, key_id=key_id)
        responses.append(resolve(keys, user, key_id=key_id, caller="gateway"))
        responses.append(
            keys.post(
                f"/internal/keys/{key_id}/use-failed",
                user_id=user,
                caller="chat",
                json={"reason": "auth_failed", "markInvalid": True},
            )
        )
        responses.append(resolve(keys, user, key_id=key_id))
        responses.append(keys.delete(f"/api/providers/openai/keys/{key_id}", user_id=user))
        responses.append(
            keys.post("/api/providers/openai/keys", user_id=user, json={"apiKey": api_key + " x"})
        )

    assert chat_view.get_json()["apiKey"] == api_key
    # The whole key, and the part of it that no mask shows, are nowhere else.
    secrets_to_find = (api_key, api_key[3:-4], rejected, rejected[3:-4])
    rows = dump_every_row(app)
    assert "audit_logs" in rows and "provider_keys" in rows
    for secret in secrets_to_find:
        assert secret not in rows
        for response in responses:
            assert secret not in response.get_data(as_text=True)
            assert secret not in str(response.headers)
        for record in caplog.records:
            assert secret not in record.getMessage()
            assert secret not in repr(vars(record))
