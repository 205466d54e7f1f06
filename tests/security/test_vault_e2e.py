"""The key vault end to end through the gateway (issue 3): masking, refusals that store nothing,
re-validation, revocation that destroys the ciphertext, other users, and who may read a plaintext.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.e2e.sse import read_events
from tests.security.conftest import (
    BYOK_MODELS,
    SERVICES,
    add_key,
    byok_thread,
    credential_headers,
    direct,
    key_row,
    list_keys,
    new_api_key,
    send_message,
    signed_in_client,
)

pytestmark = pytest.mark.e2e

PROVIDERS = list(BYOK_MODELS)
KEY_FIELDS = {"id", "provider", "label", "keyMask", "status", "lastValidatedAt", "lastUsedAt", "createdAt"}
MASK_FILLER = set(".*\u2022\u2026")


def assert_masked(mask: str, api_key: str) -> None:
    """At most the first 3 and the last 4 characters of the key show; the rest is filler."""
    head = 0
    while head < min(len(mask), len(api_key)) and mask[head] == api_key[head]:
        head += 1
    tail = 0
    while tail < min(len(mask), len(api_key)) - head and mask[-1 - tail] == api_key[-1 - tail]:
        tail += 1
    assert head <= 3 and tail <= 4, (mask, api_key)
    middle = mask[head : len(mask) - tail]
    assert middle and set(middle) <= MASK_FILLER, (mask, api_key)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def assert_secret_free(response, api_key: str) -> None:
    for part in (api_key, api_key[3:-4]):
        assert part not in response.text
        assert part not in str(response.headers)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_valid_key_is_stored_active_masked_and_encrypted(sec_suite, provider):
    client = signed_in_client(sec_suite)
    api_key = new_api_key(provider)
    response = client.post(f"/api/providers/{provider}/keys", json={"apiKey": api_key, "label": "mine"})
    assert response.status_code == 201, response.text
    key = response.json()["key"]
    assert set(key) == KEY_FIELDS
    assert (key["provider"], key["label"], key["status"]) == (provider, "mine", "active")
    assert key["lastValidatedAt"]
    assert_masked(key["keyMask"], api_key)
    assert_secret_free(response, api_key)

    listed = client.get(f"/api/providers/{provider}/keys")
    assert [k["id"] for k in listed.json()["keys"]] == [key["id"]]
    assert_secret_free(listed, api_key)

    row = key_row(sec_suite, key["id"])
    assert row["status"] == "active" and row["user_id"] == client.user["id"]
    assert row["key_ciphertext"] and api_key not in row["key_ciphertext"]
    assert api_key[3:-4] not in str(row)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_key_the_provider_rejects_is_400_key_invalid_and_not_stored(sec_suite, provider):
    client = signed_in_client(sec_suite)
    api_key = new_api_key(provider, tag="invalid")
    response = client.post(f"/api/providers/{provider}/keys", json={"apiKey": api_key})
    error = assert_error(response, 400, "key_invalid")
    assert error["retryable"] is False
    assert_secret_free(response, api_key)
    assert list_keys(client, provider) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_key_added_while_the_provider_is_down_is_503_and_not_stored(sec_suite, sim, provider):
    client = signed_in_client(sec_suite)
    api_key = new_api_key(provider)
    sim.set_down(provider, True)
    try:
        response = client.post(f"/api/providers/{provider}/keys", json={"apiKey": api_key})
    finally:
        sim.set_down(provider, False)
    error = assert_error(response, 503, "upstream_unavailable")
    assert error["retryable"] is True
    assert_secret_free(response, api_key)
    assert list_keys(client, provider) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_revalidate_after_the_provider_revoked_the_key_marks_it_invalid(sec_suite, sim, provider):
    client = signed_in_client(sec_suite)
    key = add_key(client, provider)
    sim.revoke(key["apiKey"])
    response = client.post(f"/api/providers/{provider}/keys/{key['id']}/validate")
    assert response.status_code == 200, response.text
    assert response.json()["key"]["status"] == "invalid"
    assert_secret_free(response, key["apiKey"])
    assert [k["status"] for k in list_keys(client, provider)] == ["invalid"]
    # An invalid key is not handed to a provider: models refuse it.
    models = client.get(f"/api/providers/{provider}/models?keyId={key['id']}")
    assert_error(models, 409, "key_not_active")


def test_revalidate_during_an_outage_leaves_the_status_unchanged(sec_suite, sim):
    client = signed_in_client(sec_suite)
    active = add_key(client, "anthropic")
    invalid = add_key(client, "anthropic")
    sim.revoke(invalid["apiKey"])
    assert client.post(f"/api/providers/anthropic/keys/{invalid['id']}/validate").json()["key"]["status"] == (
        "invalid"
    )
    before = {k["id"]: k for k in list_keys(client, "anthropic")}

    sim.set_down("anthropic", True)
    try:
        responses = [
            client.post(f"/api/providers/anthropic/keys/{key['id']}/validate") for key in (active, invalid)
        ]
    finally:
        sim.set_down("anthropic", False)
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "upstream_unavailable"
    after = {k["id"]: k for k in list_keys(client, "anthropic")}
    assert after == before
    assert after[active["id"]]["status"] == "active" and after[invalid["id"]]["status"] == "invalid"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_revoke_destroys_the_ciphertext_and_the_key_is_never_used_again(sec_suite, sim, provider):
    client = signed_in_client(sec_suite)
    key = add_key(client, provider)
    thread = byok_thread(client, provider, key["id"])
    assert read_events(send_message(client, thread["id"], "before revoke"))[-1].name == "done"
    assert key_row(sec_suite, key["id"])["key_ciphertext"]
    used_before = len(sim.requests(key["apiKey"]))

    assert client.delete(f"/api/providers/{provider}/keys/{key['id']}").status_code == 204

    row = key_row(sec_suite, key["id"])
    assert row["status"] == "revoked" and row["key_ciphertext"] is None
    assert [k["status"] for k in list_keys(client, provider)] == ["revoked"]
    # Named or as the default key: no models, no message, no re-validation.
    assert_error(client.get(f"/api/providers/{provider}/models?keyId={key['id']}"), 409, "key_not_active")
    assert_error(client.get(f"/api/providers/{provider}/models"), 409, "key_not_active")
    assert_error(
        client.post(f"/api/providers/{provider}/models/refresh", json={"keyId": key["id"]}),
        409,
        "key_not_active",
    )
    assert_error(send_message(client, thread["id"], "after revoke"), 409, "key_not_active")
    assert_error(client.post(f"/api/providers/{provider}/keys/{key['id']}/validate"), 409, "key_not_active")
    new_thread = client.post(
        "/api/threads",
        json={"mode": "byok", "provider": provider, "model": BYOK_MODELS[provider], "keyId": key["id"]},
    )
    assert new_thread.status_code in (400, 409), new_thread.text
    assert len(sim.requests(key["apiKey"])) == used_before, "a revoked key reached the provider"
    # Revoking again changes nothing and reveals nothing.
    assert client.delete(f"/api/providers/{provider}/keys/{key['id']}").status_code == 204
    assert key_row(sec_suite, key["id"])["key_ciphertext"] is None


def test_revoked_ciphertext_is_in_no_byte_of_the_database_files(sec_suite):
    """SQLite: the destroyed ciphertext is checkpointed out of the WAL and overwritten in the file.
    (Postgres keeps its own WAL and backups, outside the application's reach: the README says so.)"""
    client = signed_in_client(sec_suite)
    key = add_key(client, "openai")
    stored = key_row(sec_suite, key["id"])["key_ciphertext"]
    ciphertext = stored.encode() if isinstance(stored, str) else bytes(stored)
    assert len(ciphertext) > 32

    assert client.delete(f"/api/providers/openai/keys/{key['id']}").status_code == 204

    assert key_row(sec_suite, key["id"])["key_ciphertext"] is None
    if sec_suite.backend == "sqlite":
        pieces = [ciphertext[i : i + 24] for i in range(0, len(ciphertext) - 24, 24)]
        for path in Path(sec_suite.env["KEYLM_VAR_DIR"]).glob("keys.db*"):
            data = path.read_bytes()
            assert not [piece for piece in pieces if piece in data], f"ciphertext left in {path.name}"
        wal = Path(sec_suite.env["KEYLM_VAR_DIR"]) / "keys.db-wal"
        assert not wal.exists() or wal.stat().st_size == 0


def test_another_user_gets_404_for_every_key_endpoint_on_my_key(sec_suite, sim):
    owner = signed_in_client(sec_suite)
    key = add_key(owner, "openai")
    calls_before = len(sim.requests(key["apiKey"]))
    other = signed_in_client(sec_suite)
    base = f"/api/providers/openai/keys/{key['id']}"
    for response in (
        other.post(f"{base}/validate"),
        other.delete(base),
        other.post(f"/api/providers/anthropic/keys/{key['id']}/validate"),
        other.delete(f"/api/providers/anthropic/keys/{key['id']}"),
        other.get(f"/api/providers/openai/models?keyId={key['id']}"),
        other.post("/api/providers/openai/models/refresh", json={"keyId": key["id"]}),
    ):
        assert_error(response, 404, "not_found")
        assert key["keyMask"] not in response.text
    for provider in PROVIDERS:
        assert list_keys(other, provider) == []
    borrowed = other.post(
        "/api/threads",
        json={"mode": "byok", "provider": "openai", "model": BYOK_MODELS["openai"], "keyId": key["id"]},
    )
    assert borrowed.status_code in (400, 404), borrowed.text

    # The owner's key is untouched and was never sent to the provider on the other user's behalf.
    mine = list_keys(owner, "openai")
    assert [(k["id"], k["status"], k["lastUsedAt"]) for k in mine] == [(key["id"], "active", None)]
    assert key_row(sec_suite, key["id"])["key_ciphertext"]
    assert len(sim.requests(key["apiKey"])) == calls_before


def test_only_chat_service_may_read_a_plaintext_key(sec_suite):
    client = signed_in_client(sec_suite)
    key = add_key(client, "groq")
    user_id = client.user["id"]
    body = {"provider": "groq", "keyId": key["id"]}

    def resolve(headers):
        return direct(sec_suite, "keys", "POST", "/internal/keys/resolve", json=body, headers=headers)

    refused = {
        "no credential": (resolve({}), 401),
        "chat without a user": (resolve(credential_headers(sec_suite, "chat", "keys")), 401),
    }
    # The gateway is a caller keys accepts, but not here (403); quota, auth and keys itself are no
    # callers of keys: their own signed credentials are refused before any route (401).
    for caller, status in (("gateway", 403), ("quota", 401), ("auth", 401), ("keys", 401)):
        headers = credential_headers(sec_suite, caller, "keys", user_id, str(uuid.uuid4()))
        refused[caller] = (resolve(headers), status)
        refused[f"{caller} without a user"] = (resolve(credential_headers(sec_suite, caller, "keys")), status)
    # A breached gateway cannot pass for chat: a credential naming chat but signed with its key.
    impostor = credential_headers(
        sec_suite, "chat", "keys", user_id, key=sec_suite.env["GATEWAY_SIGNING_KEY"]
    )
    refused["gateway signing as chat"] = (resolve(impostor), 401)
    for who, (response, status) in refused.items():
        assert response.status_code == status, (who, response.status_code, response.text)
        assert key["apiKey"] not in response.text and "apiKey" not in response.text, who
    # The same holds for the other chat-only endpoint: it cannot be used to flip a key's status.
    for caller, status in (("gateway", 403), ("quota", 401), ("auth", 401)):
        response = direct(
            sec_suite,
            "keys",
            "POST",
            f"/internal/keys/{key['id']}/use-failed",
            json={"reason": "auth_failed", "markInvalid": True},
            headers=credential_headers(sec_suite, caller, "keys", user_id),
        )
        assert response.status_code == status, (caller, response.text)
    assert list_keys(client, "groq")[0]["status"] == "active"

    allowed = resolve(credential_headers(sec_suite, "chat", "keys", user_id))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["apiKey"] == key["apiKey"]
    assert allowed.headers.get("Cache-Control") == "no-store"
    # chat itself may only read the user's own key: another user's id in the credential is a 404.
    stranger = resolve(credential_headers(sec_suite, "chat", "keys", str(uuid.uuid4())))
    assert stranger.status_code == 404 and key["apiKey"] not in stranger.text


def test_no_service_answers_the_plaintext_endpoint_to_a_credential_for_another_audience(sec_suite):
    client = signed_in_client(sec_suite)
    key = add_key(client, "gemini")
    for audience in [s for s in SERVICES if s != "keys"] + ["gateway"]:
        headers = credential_headers(sec_suite, "chat", audience, client.user["id"])
        response = direct(
            sec_suite,
            "keys",
            "POST",
            "/internal/keys/resolve",
            json={"provider": "gemini", "keyId": key["id"]},
            headers=headers,
        )
        assert response.status_code == 401, (audience, response.text)
        assert key["apiKey"] not in response.text
