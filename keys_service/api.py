"""keys_service HTTP API: the public key routes (via the gateway) and chat_service's internal ones."""

from flask import Blueprint

from keys_service import services
from keys_service.schemas import AddKeySchema, KeySchema, ResolveKeySchema, UseFailedSchema
from shared.providers import PROVIDERS
from shared.web import current_caller, current_user_id, get_settings, load_json

bp = Blueprint("keys", __name__)

key_schema = KeySchema()
# Only the four providers match; any other provider is an ordinary 404 not_found.
KEYS_PATH = f"/api/providers/<any({', '.join(PROVIDERS)}):provider>/keys"
# The plaintext must not linger in any cache on its way to chat_service.
NO_STORE = {"Cache-Control": "no-store"}


@bp.post(KEYS_PATH)
def add_key(provider: str):
    data = load_json(AddKeySchema())
    key = services.add_key(get_settings(), current_user_id(), provider, data["apiKey"], data["label"])
    return {"key": key_schema.dump(key)}, 201


@bp.get(KEYS_PATH)
def list_keys(provider: str):
    keys = services.list_keys(current_user_id(), provider)
    return {"keys": key_schema.dump(keys, many=True)}


@bp.post(f"{KEYS_PATH}/<key_id>/validate")
def revalidate_key(provider: str, key_id: str):
    key = services.revalidate_key(get_settings(), current_user_id(), provider, key_id)
    return {"key": key_schema.dump(key)}


@bp.delete(f"{KEYS_PATH}/<key_id>")
def revoke_key(provider: str, key_id: str):
    services.revoke_key(current_user_id(), provider, key_id)
    return "", 204


@bp.post("/internal/keys/resolve")
def resolve_key_for_chat():
    """For chat_service only: the plaintext of one of the user's active keys."""
    current_caller().require_service("chat")
    data = load_json(ResolveKeySchema())
    resolved = services.decrypt_key_for_chat(
        get_settings(), current_user_id(), data["provider"], data["keyId"]
    )
    return {"key": key_schema.dump(resolved.key), "apiKey": resolved.api_key}, 200, NO_STORE


@bp.post("/internal/keys/<key_id>/use-failed")
def report_use_failure(key_id: str):
    """For chat_service only: a key failed in use (audited; may mark it invalid)."""
    current_caller().require_service("chat")
    data = load_json(UseFailedSchema())
    key = services.record_use_failure(current_user_id(), key_id, data["reason"], data["markInvalid"])
    return {"key": key_schema.dump(key)}
