"""keys_service's public operations, for the OpenAPI document (`python -m runner openapi`)."""

from __future__ import annotations

from marshmallow import Schema, fields

from keys_service.schemas import AddKeySchema, KeySchema
from shared.openapi import (
    AUTH_WRITE,
    DATE_TIME,
    PROVIDER_PARAMETER,
    ServiceDoc,
    body,
    errors,
    nullable,
    ok,
    path_parameter,
)
from shared.providers import PROVIDERS

KEY_STATUSES = ["active", "invalid", "revoked"]


class KeyEnvelopeSchema(Schema):
    key = fields.Nested(KeySchema, required=True)


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeySchema), required=True)


DOC = ServiceDoc(
    tags=["keys"],
    inputs={"AddKeyRequest": AddKeySchema},
    outputs={"Key": KeySchema, "KeyResponse": KeyEnvelopeSchema, "KeyList": KeyListSchema},
    parameters={
        "provider": PROVIDER_PARAMETER,
        "keyId": path_parameter("keyId", type="string", minLength=1, maxLength=64),
    },
    field_docs={
        (KeySchema, "provider"): {"type": "string", "enum": list(PROVIDERS)},
        (KeySchema, "label"): {"type": ["string", "null"]},
        (KeySchema, "keyMask"): {
            "type": "string",
            "description": "At most the first 3 and last 4 characters of the key (`sk-...AbCd`).",
        },
        (KeySchema, "status"): {"type": "string", "enum": KEY_STATUSES},
        (KeySchema, "lastValidatedAt"): nullable(DATE_TIME),
        (KeySchema, "lastUsedAt"): nullable(DATE_TIME),
        (KeySchema, "createdAt"): DATE_TIME,
    },
    field_notes={(AddKeySchema, "label"): "Must not contain the key itself."},
    paths={
        "/api/providers/{provider}/keys": {
            "parameters": ["provider"],
            "get": {
                "tags": ["keys"],
                "operationId": "listKeys",
                "summary": "The user's keys for one provider",
                "responses": {"200": ok("The keys.", "KeyList"), **errors(401, 404)},
            },
            "post": {
                "tags": ["keys"],
                "operationId": "addKey",
                "summary": "Validate a key with the provider and store it (encrypted)",
                "requestBody": body("AddKeyRequest", "The key is never echoed, logged or audited."),
                "responses": {
                    "201": ok("Stored; `status: active`.", "KeyResponse"),
                    **errors(
                        (
                            400,
                            "`validation_error`, `invalid_json`, `key_invalid` (the provider "
                            "rejected it; not stored)",
                        ),
                        *AUTH_WRITE,
                        404,
                        413,
                        (429, "`rate_limited`: KEY_CHECK_LIMIT_PER_MINUTE, per user and per IP"),
                        (503, "`upstream_unavailable`: the provider could not be reached (not stored)"),
                    ),
                },
            },
        },
        "/api/providers/{provider}/keys/{keyId}/validate": {
            "parameters": ["provider", "keyId"],
            "post": {
                "tags": ["keys"],
                "operationId": "validateKey",
                "summary": "Re-validate a key with the provider",
                "responses": {
                    "200": ok("`status` is now `active` or `invalid`.", "KeyResponse"),
                    **errors(
                        *AUTH_WRITE,
                        404,
                        (409, "`key_not_active`: the key was revoked"),
                        (429, "`rate_limited`: KEY_CHECK_LIMIT_PER_MINUTE (with adding keys)"),
                        (503, "`upstream_unavailable`: the provider could not be reached"),
                    ),
                },
            },
        },
        "/api/providers/{provider}/keys/{keyId}": {
            "parameters": ["provider", "keyId"],
            "delete": {
                "tags": ["keys"],
                "operationId": "revokeKey",
                "summary": "Revoke a key: status `revoked`, the ciphertext destroyed",
                "responses": {"204": ok("Revoked."), **errors(*AUTH_WRITE, 404)},
            },
        },
    },
)
