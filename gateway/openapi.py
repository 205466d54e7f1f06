"""The OpenAPI 3.1 document of the public API (`GET /api/openapi.json`), built from the services'
marshmallow schemas with apispec.

The gateway may import the services' `schemas` modules only (never their models or apps). Where a
shape has no marshmallow schema in a service (the error envelope, health, ModelList, the SSE event
payloads, the `{"user": ...}` wrappers), a small schema below describes it for the docs only.

Output schemas in the services use `fields.Function` for computed values and say nothing about
`null`; `FIELD_DOCS` gives those fields their documented type. A unit test keeps every
`Function`/`Method` field of a documented schema covered, so a new computed field cannot ship untyped.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify
from marshmallow import INCLUDE, Schema, fields, validate

from auth_service.schemas import (
    CredentialsSchema,
    LoginSchema,
    ResetConfirmSchema,
    ResetRequestSchema,
    UserSchema,
)
from chat_service.schemas import (
    CreateThreadSchema,
    ListThreadsSchema,
    MessageSchema,
    ModelListQuerySchema,
    RefreshModelsSchema,
    SendMessageSchema,
    ThreadSchema,
    ThreadSettingsSchema,
    UpdateThreadSchema,
)
from gateway.sessions import COOKIE_NAME
from keys_service.schemas import AddKeySchema, KeySchema
from quota_service.schemas import BucketUsageSchema, FreeUsageSchema
from shared.providers import PROVIDERS

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"

KEY_STATUSES = ["active", "invalid", "revoked"]
THREAD_MODES = ["free", "byok"]
THREAD_STATUSES = ["active"]
MESSAGE_ROLES = ["user", "assistant"]
MESSAGE_STATUSES = ["complete", "streaming", "stopped", "failed"]
HEALTH_STATES = ["ok", "degraded", "down"]

DATE_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601 UTC, `Z` suffix."}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.1: `null` is a type like any other."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": [*types, "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# --- schemas that exist only for the docs -------------------------------------------------------
class ErrorBodySchema(Schema):
    code = fields.String(
        required=True,
        metadata={
            "description": "Machine-readable, snake_case: `validation_error`, `invalid_json`, "
            "`unauthenticated`, `csrf_failed`, `not_found`, `email_taken`, `key_not_active`, "
            "`request_in_progress`, `request_too_large`, `rate_limited`, `free_quota_exhausted`, "
            "`upstream_error`, `upstream_unavailable`, `service_unavailable`, `internal_error`, ...",
            "examples": ["validation_error"],
        },
    )
    message = fields.String(required=True, metadata={"description": "For people; never a secret."})
    retryable = fields.Boolean(required=True)
    details = fields.Dict(
        metadata={
            "description": "Per code: `fields` (field -> list of messages, nested for nested objects) "
            "for `validation_error`; `resetsAt` and `bucket` for `free_quota_exhausted`."
        }
    )


class ErrorSchema(Schema):
    """The one error envelope of every service and the gateway."""

    error = fields.Nested(ErrorBodySchema, required=True)


class ServiceStatesSchema(Schema):
    auth = fields.String(required=True, validate=validate.OneOf(HEALTH_STATES))
    keys = fields.String(required=True, validate=validate.OneOf(HEALTH_STATES))
    chat = fields.String(required=True, validate=validate.OneOf(HEALTH_STATES))
    quota = fields.String(required=True, validate=validate.OneOf(HEALTH_STATES))


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "degraded"]))
    services = fields.Nested(ServiceStatesSchema, required=True)
    rateLimits = fields.String(
        required=True,
        validate=validate.OneOf(["ok", "memory-fallback"]),
        metadata={
            "description": "`memory-fallback` while Redis is unreachable and limits are counted per "
            "process (status is then `degraded`, still 200)"
        },
    )


class OkSchema(Schema):
    ok = fields.Boolean(required=True, validate=validate.Equal(True))


class UserEnvelopeSchema(Schema):
    user = fields.Nested(UserSchema, required=True)


class KeyEnvelopeSchema(Schema):
    key = fields.Nested(KeySchema, required=True)


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeySchema), required=True)


class ModelSchema(Schema):
    """One chat-capable model; the same shape for every provider (more fields may be added)."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    displayName = fields.String(required=True)
    contextWindow = fields.Integer(allow_none=True, metadata={"description": "Tokens, when known."})


class ModelListSchema(Schema):
    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))
    keyId = fields.String(required=True)
    models = fields.List(fields.Nested(ModelSchema), required=True, metadata={"description": "Sorted by id."})
    fetchedAt = fields.String(required=True)
    expiresAt = fields.String(required=True)
    stale = fields.Boolean(
        required=True, metadata={"description": "True when a refresh failed and the cached list is served."}
    )


class TokenUsageSchema(Schema):
    promptTokens = fields.Integer(required=True, allow_none=True)
    outputTokens = fields.Integer(required=True, allow_none=True)
    totalTokens = fields.Integer(required=True, allow_none=True)


class StreamErrorSchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    retryable = fields.Boolean(required=True)


class ThreadEnvelopeSchema(Schema):
    thread = fields.Nested(ThreadSchema, required=True)


class ThreadPageSchema(Schema):
    threads = fields.List(
        fields.Nested(ThreadSchema), required=True, metadata={"description": "Newest `updatedAt` first."}
    )
    nextCursor = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Pass as `cursor` for the next page; null on the last page."},
    )


class ThreadDetailSchema(Schema):
    thread = fields.Nested(ThreadSchema, required=True)
    messages = fields.List(
        fields.Nested(MessageSchema), required=True, metadata={"description": "Oldest first."}
    )


# The SSE events of `POST /api/threads/{threadId}/messages` (each one `event: NAME` + one `data:` line).
class MessageCreatedEventSchema(Schema):
    userMessage = fields.Nested(MessageSchema, required=True)
    assistantMessage = fields.Nested(
        MessageSchema, required=True, metadata={"description": "`status: streaming`, empty content."}
    )


class DeltaEventSchema(Schema):
    text = fields.String(required=True)


class DoneEventSchema(Schema):
    message = fields.Nested(
        MessageSchema, required=True, metadata={"description": "`status: complete`, full content and usage."}
    )


class ErrorEventSchema(Schema):
    error = fields.Nested(StreamErrorSchema, required=True)
    message = fields.Nested(
        MessageSchema,
        required=True,
        metadata={"description": "`status: failed` or `stopped`; the partial content is kept."},
    )


# event name -> (component of the whole event, component of its `data` JSON, what it means)
SSE_EVENTS = {
    "message.created": (
        "MessageCreatedFrame",
        "MessageCreatedEvent",
        "First: the stored user message and the empty assistant one.",
    ),
    "delta": ("DeltaFrame", "DeltaEvent", "Zero or more: text as the provider sends it."),
    "usage": ("UsageFrame", "TokenUsage", "When the provider reports token usage."),
    "done": ("DoneFrame", "DoneEvent", "Terminal (one of done/error): the completed assistant message."),
    "error": (
        "ErrorFrame",
        "ErrorEvent",
        "Terminal (one of done/error): what failed, the message as stored.",
    ),
}

# --- what the services' output schemas leave unsaid ---------------------------------------------
USAGE_OR_NULL = _nullable(_ref("TokenUsage"))
FIELD_DOCS: dict[tuple[type[Schema], str], dict[str, Any]] = {
    (UserSchema, "createdAt"): DATE_TIME,
    (KeySchema, "provider"): {"type": "string", "enum": list(PROVIDERS)},
    (KeySchema, "label"): {"type": ["string", "null"]},
    (KeySchema, "keyMask"): {
        "type": "string",
        "description": "At most the first 3 and last 4 characters of the key (`sk-...AbCd`).",
    },
    (KeySchema, "status"): {"type": "string", "enum": KEY_STATUSES},
    (KeySchema, "lastValidatedAt"): _nullable(DATE_TIME),
    (KeySchema, "lastUsedAt"): _nullable(DATE_TIME),
    (KeySchema, "createdAt"): DATE_TIME,
    (ThreadSchema, "mode"): {"type": "string", "enum": THREAD_MODES},
    (ThreadSchema, "provider"): {"type": "string", "enum": list(PROVIDERS)},
    (ThreadSchema, "keyId"): {"type": ["string", "null"], "description": "The key of a byok thread."},
    (ThreadSchema, "systemPrompt"): {"type": ["string", "null"]},
    (ThreadSchema, "settings"): _ref("ThreadSettings"),
    (ThreadSchema, "status"): {"type": "string", "enum": THREAD_STATUSES},
    (ThreadSchema, "createdAt"): DATE_TIME,
    (ThreadSchema, "updatedAt"): DATE_TIME,
    (ThreadSchema, "usage"): _ref("TokenUsage"),
    (MessageSchema, "role"): {"type": "string", "enum": MESSAGE_ROLES},
    (MessageSchema, "status"): {"type": "string", "enum": MESSAGE_STATUSES},
    (MessageSchema, "providerMessageId"): {"type": ["string", "null"]},
    (MessageSchema, "model"): {
        "type": ["string", "null"],
        "description": "The model that answered (assistant messages); null on user messages.",
    },
    (MessageSchema, "usage"): USAGE_OR_NULL,
    (MessageSchema, "error"): _nullable(_ref("StreamError")),
    (MessageSchema, "finishReason"): {
        "type": ["string", "null"],
        "description": "`stop`, `length`, `filtered`, `tool` or `other`, when the provider said.",
    },
    (MessageSchema, "createdAt"): DATE_TIME,
    (FreeUsageSchema, "day"): {"type": "string", "format": "date"},
    (FreeUsageSchema, "resetsAt"): DATE_TIME,
    (FreeUsageSchema, "showKeyReminder"): {
        "type": "boolean",
        "description": "True once the user made 5 or more free requests today.",
    },
    (ModelListSchema, "fetchedAt"): DATE_TIME,
    (ModelListSchema, "expiresAt"): DATE_TIME,
}

# Named components: inputs (requests) and outputs (responses). Outputs list every property as
# required: a dump always writes every field.
INPUT_COMPONENTS: dict[str, type[Schema]] = {
    "RegisterRequest": CredentialsSchema,
    "LoginRequest": LoginSchema,
    "PasswordResetRequest": ResetRequestSchema,
    "PasswordResetConfirm": ResetConfirmSchema,
    "AddKeyRequest": AddKeySchema,
    "RefreshModelsRequest": RefreshModelsSchema,
    "ThreadSettings": ThreadSettingsSchema,
    "CreateThreadRequest": CreateThreadSchema,
    "UpdateThreadRequest": UpdateThreadSchema,
    "SendMessageRequest": SendMessageSchema,
}
OUTPUT_COMPONENTS: dict[str, type[Schema]] = {
    "ErrorBody": ErrorBodySchema,
    "Error": ErrorSchema,
    "Health": HealthSchema,
    "Ok": OkSchema,
    "User": UserSchema,
    "UserResponse": UserEnvelopeSchema,
    "Key": KeySchema,
    "KeyResponse": KeyEnvelopeSchema,
    "KeyList": KeyListSchema,
    "Model": ModelSchema,
    "ModelList": ModelListSchema,
    "BucketUsage": BucketUsageSchema,
    "FreeUsage": FreeUsageSchema,
    "TokenUsage": TokenUsageSchema,
    "StreamError": StreamErrorSchema,
    "Message": MessageSchema,
    "Thread": ThreadSchema,
    "ThreadResponse": ThreadEnvelopeSchema,
    "ThreadPage": ThreadPageSchema,
    "ThreadDetail": ThreadDetailSchema,
    "MessageCreatedEvent": MessageCreatedEventSchema,
    "DeltaEvent": DeltaEventSchema,
    "DoneEvent": DoneEventSchema,
    "ErrorEvent": ErrorEventSchema,
}
# Optional in the docs even though a dump writes them (only present for some codes).
OPTIONAL_OUTPUT_FIELDS = {"ErrorBody": {"details"}}


# Input rules a JSON Schema keyword cannot state: said in words (apispec's own output is kept).
FIELD_NOTES: dict[tuple[type[Schema], str], str] = {
    (CredentialsSchema, "email"): "Checked with marshmallow's `Email` rule, which is stricter than the "
    "`email` format: the domain is a dotted name whose last label has 2 or more characters (or an "
    "IPv4 literal, or `localhost`). Compared case-insensitively.",
    (AddKeySchema, "label"): "Must not contain the key itself.",
}


def _documented_field(self, field, ret, **kwargs) -> dict[str, Any]:
    """apispec attribute function: apply FIELD_DOCS (replacing what apispec guessed) and FIELD_NOTES."""
    parent = field.parent
    if not isinstance(parent, Schema):
        return {}
    for cls in type(parent).__mro__:
        doc = FIELD_DOCS.get((cls, field.name))
        if doc is not None:
            kept = {k: v for k, v in ret.items() if k in ("readOnly", "writeOnly", "description")}
            ret.clear()
            return {**kept, **copy.deepcopy(doc)}
        note = FIELD_NOTES.get((cls, field.name))
        if note is not None:
            return {"description": note}
    return {}


# --- responses and parameters -------------------------------------------------------------------
REQUEST_ID_HEADER = {"$ref": "#/components/headers/X-Request-Id"}
ERROR_DESCRIPTIONS = {
    400: "`validation_error` (`details.fields`), `invalid_json`",
    401: "`unauthenticated`: no live session",
    403: "`csrf_failed`: a cookie-carrying write whose Origin (or Referer) is not the app's",
    404: "`not_found` (also for other users' resources)",
    409: "conflict",
    413: "`request_too_large`",
    429: "`rate_limited` (with `Retry-After`)",
    502: "`upstream_error`, `upstream_auth_failed`, `upstream_rate_limited`: the provider answered "
    "with an error",
    503: "`upstream_unavailable` (the provider) or `service_unavailable` (a KeyLM service)",
    "5XX": "`internal_error` (never a stack trace or a secret), `service_unavailable`",
}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(schema)}}


def _error(status: int | str, description: str | None = None) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": REQUEST_ID_HEADER}
    if status == 429:
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return {
        "description": description or ERROR_DESCRIPTIONS[status],
        "headers": headers,
        "content": _json("Error"),
    }


def _ok(description: str, schema: str | None = None, headers: dict[str, Any] | None = None) -> dict:
    response: dict[str, Any] = {
        "description": description,
        "headers": {"X-Request-Id": REQUEST_ID_HEADER, **(headers or {})},
    }
    if schema:
        response["content"] = _json(schema)
    return response


def _body(schema: str, description: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"required": True, "content": _json(schema)}
    if description:
        body["description"] = description
    return body


def _optional_body(schema: str) -> dict[str, Any]:
    return {"required": False, "content": _json(schema)}


def _param(name: str) -> str:
    return name  # apispec turns a registered parameter's name into its $ref


SET_COOKIE = {
    "Set-Cookie": {
        "description": f"`{COOKIE_NAME}=...; HttpOnly; SameSite=Lax; Path=/`; with COOKIE_SECURE=true "
        f"(the default when APP_BASE_URL is https) it is `__Host-{COOKIE_NAME}` and `Secure`: the session.",
        "schema": {"type": "string"},
    }
}
NO_SESSION: list[dict[str, list[str]]] = []  # `security: []`: no session needed
ERRORS_COMMON = ("5XX",)


def _errors(*statuses: int | tuple[int, str]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in (*statuses, *ERRORS_COMMON):
        code, description = status if isinstance(status, tuple) else (status, None)
        responses[str(code)] = _error(code, description)
    return responses


def _operations() -> dict[str, dict[str, dict[str, Any]]]:
    """Every public path of api.md, with each status it can answer."""
    write = (403, 413)  # a cookie-carrying write without our Origin; a body over MAX_BODY_BYTES
    auth_write = (401, 403)
    return {
        "/api/healthz": {
            "get": {
                "tags": ["health"],
                "operationId": "getHealth",
                "summary": "Health of the gateway and every internal service",
                "security": NO_SESSION,
                "responses": {
                    "200": _ok("Every service is up (`degraded` when limits run in memory).", "Health"),
                    "503": _ok("A service is down or degraded; it is marked.", "Health"),
                    **_errors(),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "tags": ["meta"],
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": NO_SESSION,
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "headers": {"X-Request-Id": REQUEST_ID_HEADER},
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_errors(),
                },
            }
        },
        # --- auth ---------------------------------------------------------------------------
        "/api/auth/register": {
            "post": {
                "tags": ["auth"],
                "operationId": "register",
                "summary": "Create an account and sign in",
                "security": NO_SESSION,
                "requestBody": _body(
                    "RegisterRequest",
                    "Passwords are 8 to 128 characters; long ones are pre-hashed, never truncated.",
                ),
                "responses": {
                    "201": _ok("Registered and signed in.", "UserResponse", SET_COOKIE),
                    **_errors(400, *write, (409, "`email_taken`"), 429),
                },
            }
        },
        "/api/auth/login": {
            "post": {
                "tags": ["auth"],
                "operationId": "login",
                "summary": "Sign in",
                "security": NO_SESSION,
                "requestBody": _body("LoginRequest"),
                "responses": {
                    "200": _ok("Signed in.", "UserResponse", SET_COOKIE),
                    **_errors(
                        400,
                        (401, "`invalid_credentials` (the same for an unknown email and a wrong password)"),
                        *write,
                        (
                            429,
                            "`rate_limited`: too many logins from this IP, or too many failed ones "
                            "for this email from this IP (other addresses are slowed down, not refused)",
                        ),
                    ),
                },
            }
        },
        "/api/auth/logout": {
            "post": {
                "tags": ["auth"],
                "operationId": "logout",
                "summary": "End this session (the cookie is cleared; a replay of it is refused)",
                "responses": {
                    "204": _ok("Signed out.", headers=SET_COOKIE),
                    **_errors(*auth_write),
                },
            }
        },
        "/api/auth/me": {
            "get": {
                "tags": ["auth"],
                "operationId": "getMe",
                "summary": "The signed-in user",
                "responses": {"200": _ok("The user.", "UserResponse"), **_errors(401)},
            }
        },
        "/api/auth/password-reset/request": {
            "post": {
                "tags": ["auth"],
                "operationId": "requestPasswordReset",
                "summary": "Mail a one-time reset link (the same answer whether or not the email exists)",
                "security": NO_SESSION,
                "requestBody": _body("PasswordResetRequest"),
                "responses": {"202": _ok("Accepted.", "Ok"), **_errors(400, *write, 429)},
            }
        },
        "/api/auth/password-reset/confirm": {
            "post": {
                "tags": ["auth"],
                "operationId": "confirmPasswordReset",
                "summary": "Set a new password with a reset token; every session of the user ends",
                "security": NO_SESSION,
                "requestBody": _body("PasswordResetConfirm"),
                "responses": {
                    "200": _ok("Password changed.", "Ok"),
                    **_errors(
                        (
                            400,
                            "`validation_error`, `invalid_json`, `invalid_token` (unknown, used or "
                            "expired token)",
                        ),
                        *write,
                        429,
                    ),
                },
            }
        },
        # --- provider keys ------------------------------------------------------------------
        "/api/providers/{provider}/keys": {
            "parameters": [_param("provider")],
            "get": {
                "tags": ["keys"],
                "operationId": "listKeys",
                "summary": "The user's keys for one provider",
                "responses": {"200": _ok("The keys.", "KeyList"), **_errors(401, 404)},
            },
            "post": {
                "tags": ["keys"],
                "operationId": "addKey",
                "summary": "Validate a key with the provider and store it (encrypted)",
                "requestBody": _body("AddKeyRequest", "The key is never echoed, logged or audited."),
                "responses": {
                    "201": _ok("Stored; `status: active`.", "KeyResponse"),
                    **_errors(
                        (
                            400,
                            "`validation_error`, `invalid_json`, `key_invalid` (the provider "
                            "rejected it; not stored)",
                        ),
                        *auth_write,
                        404,
                        413,
                        (429, "`rate_limited`: KEY_CHECK_LIMIT_PER_MINUTE, per user and per IP"),
                        (503, "`upstream_unavailable`: the provider could not be reached (not stored)"),
                    ),
                },
            },
        },
        "/api/providers/{provider}/keys/{keyId}/validate": {
            "parameters": [_param("provider"), _param("keyId")],
            "post": {
                "tags": ["keys"],
                "operationId": "validateKey",
                "summary": "Re-validate a key with the provider",
                "responses": {
                    "200": _ok("`status` is now `active` or `invalid`.", "KeyResponse"),
                    **_errors(
                        *auth_write,
                        404,
                        (409, "`key_not_active`: the key was revoked"),
                        (429, "`rate_limited`: KEY_CHECK_LIMIT_PER_MINUTE (with adding keys)"),
                        (503, "`upstream_unavailable`: the provider could not be reached"),
                    ),
                },
            },
        },
        "/api/providers/{provider}/keys/{keyId}": {
            "parameters": [_param("provider"), _param("keyId")],
            "delete": {
                "tags": ["keys"],
                "operationId": "revokeKey",
                "summary": "Revoke a key: status `revoked`, the ciphertext destroyed",
                "responses": {"204": _ok("Revoked."), **_errors(*auth_write, 404)},
            },
        },
        # --- models -------------------------------------------------------------------------
        "/api/providers/{provider}/models": {
            "parameters": [_param("provider")],
            "get": {
                "tags": ["models"],
                "operationId": "listModels",
                "summary": "The chat models one key can use (cached per key for 24 hours)",
                "parameters": [{"in": "query", "schema": ModelListQuerySchema}],
                "responses": {
                    "200": _ok(
                        "The list; `stale: true` when a refresh failed and the cache is served.", "ModelList"
                    ),
                    **_errors(
                        400,
                        401,
                        404,
                        (409, "`key_not_active`: no active key (of that id) for this provider"),
                        (429, "`rate_limited`: with `refresh`, MODEL_REFRESH_LIMIT_PER_MINUTE"),
                        502,
                        503,
                    ),
                },
            },
        },
        "/api/providers/{provider}/models/refresh": {
            "parameters": [_param("provider")],
            "post": {
                "tags": ["models"],
                "operationId": "refreshModels",
                "summary": "Fetch the model list from the provider now",
                "requestBody": _optional_body("RefreshModelsRequest"),
                "responses": {
                    "200": _ok("The fresh list (or the cached one, `stale: true`).", "ModelList"),
                    **_errors(
                        400,
                        *auth_write,
                        404,
                        (409, "`key_not_active`"),
                        413,
                        (429, "`rate_limited`: MODEL_REFRESH_LIMIT_PER_MINUTE, per user and per IP"),
                        502,
                        503,
                    ),
                },
            },
        },
        # --- free usage ---------------------------------------------------------------------
        "/api/usage/free": {
            "get": {
                "tags": ["usage"],
                "operationId": "getFreeUsage",
                "summary": "Today's KeyLM Free usage: the user's and the global bucket",
                "responses": {"200": _ok("The snapshot.", "FreeUsage"), **_errors(401)},
            }
        },
        # --- threads and messages -----------------------------------------------------------
        "/api/threads": {
            "get": {
                "tags": ["threads"],
                "operationId": "listThreads",
                "summary": "The user's threads, newest `updatedAt` first, in cursor pages",
                "parameters": [{"in": "query", "schema": ListThreadsSchema}],
                "responses": {
                    "200": _ok("One page.", "ThreadPage"),
                    **_errors((400, "`validation_error` (a bad `limit` or `cursor`)"), 401),
                },
            },
            "post": {
                "tags": ["threads"],
                "operationId": "createThread",
                "summary": "Start a thread: `free` (the free model) or `byok` (a model of an active key)",
                "requestBody": _body(
                    "CreateThreadRequest",
                    "`byok` needs `provider` and `model`: a model from the catalog of an active key "
                    "(`keyId`, else the most recently validated one); `free` takes neither.",
                ),
                "responses": {
                    "201": _ok("Created.", "ThreadResponse"),
                    **_errors(
                        (
                            400,
                            "`validation_error` (also: no active key, or a model not in its "
                            "catalog), `invalid_json`",
                        ),
                        *auth_write,
                        (409, "`limit_reached`: MAX_THREADS_PER_USER or MAX_STORED_BYTES_PER_USER"),
                        413,
                        (429, "`rate_limited`: THREAD_CREATE_LIMIT_PER_MINUTE, per user and per IP"),
                        502,
                        503,
                    ),
                },
            },
        },
        "/api/threads/{threadId}": {
            "parameters": [_param("threadId")],
            "get": {
                "tags": ["threads"],
                "operationId": "getThread",
                "summary": "A thread and its messages, oldest first",
                "responses": {"200": _ok("The thread.", "ThreadDetail"), **_errors(401, 404)},
            },
            "patch": {
                "tags": ["threads"],
                "operationId": "renameThread",
                "summary": "Change the title (the only thing that may change)",
                "requestBody": _body("UpdateThreadRequest"),
                "responses": {
                    "200": _ok("Renamed.", "ThreadResponse"),
                    **_errors(400, *auth_write, 404, 413),
                },
            },
            "delete": {
                "tags": ["threads"],
                "operationId": "deleteThread",
                "summary": "Delete a thread and its messages",
                "responses": {"204": _ok("Deleted."), **_errors(*auth_write, 404)},
            },
        },
        "/api/threads/{threadId}/messages": {
            "parameters": [_param("threadId")],
            "post": {
                "tags": ["threads"],
                "operationId": "sendMessage",
                "summary": "Send a message; the reply streams back as server-sent events",
                "description": _sse_description(),
                "requestBody": _body(
                    "SendMessageRequest",
                    "`clientRequestId` (unique per thread) makes a send safe to retry: a repeat of a "
                    "finished request replays the stored result without calling the provider.",
                ),
                "responses": {
                    "200": {
                        "description": "The reply as an SSE stream (`Cache-Control: no-cache`, "
                        "`X-Accel-Buffering: no`); see the operation's description and `x-sse-events`.",
                        "headers": {
                            "X-Request-Id": REQUEST_ID_HEADER,
                            "Cache-Control": {"schema": {"type": "string", "const": "no-cache"}},
                            "X-Accel-Buffering": {"schema": {"type": "string", "const": "no"}},
                        },
                        "content": {"text/event-stream": {"schema": _ref("StreamEvent")}},
                        "x-sse-events": {
                            name: {"description": text, "data": _ref(data)}
                            for name, (_, data, text) in SSE_EVENTS.items()
                        },
                    },
                    **_errors(
                        400,
                        *auth_write,
                        404,
                        (
                            409,
                            "`request_in_progress` (retryable: the same clientRequestId is still "
                            "streaming), `key_not_active` (byok thread without an active key), "
                            "`limit_reached` (MAX_STORED_BYTES_PER_USER)",
                        ),
                        413,
                        (
                            429,
                            "`rate_limited` (with `Retry-After`), `free_quota_exhausted` "
                            "(`details.resetsAt`)",
                        ),
                        502,
                        503,
                    ),
                },
            },
        },
    }


def _sse_components() -> dict[str, dict[str, Any]]:
    """One event of the stream, as the OpenAPI convention for `text/event-stream` reads it (3.2's
    `itemSchema`; before 3.2 the media type's `schema` describes each event): an object with the
    `event` name and its `data` string, whose JSON is described by `contentSchema`."""
    components: dict[str, dict[str, Any]] = {}
    for name, (frame, data, text) in SSE_EVENTS.items():
        components[frame] = {
            "type": "object",
            "description": f"`event: {name}`. {text}",
            "properties": {
                "event": {"type": "string", "const": name},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": _ref(data),
                },
            },
            "required": ["event", "data"],
            "additionalProperties": False,
        }
    components["StreamEvent"] = {
        "description": "One server-sent event of a message stream (`: ping` comments aside).",
        "oneOf": [_ref(frame) for frame, _, _ in SSE_EVENTS.values()],
    }
    return components


def _sse_description() -> str:
    lines = [
        "Errors found before streaming starts (validation, `free_quota_exhausted`, `rate_limited`, "
        "`key_not_active`, not found) are plain JSON error responses. Otherwise the answer is `200` "
        "`text/event-stream`; each event is `event: NAME` and one `data:` line of JSON, in this order:",
        "",
    ]
    for name, (_, data, text) in SSE_EVENTS.items():
        lines.append(f"- `{name}`, data `#/components/schemas/{data}`: {text}")
    lines += [
        "",
        "A `: ping` comment is sent at least every 15 s while the provider is silent. When the "
        "client disconnects, the reply is stored with what arrived, `status: stopped`.",
    ]
    return "\n".join(lines)


def _parameters() -> dict[str, dict[str, Any]]:
    return {
        "provider": {
            "name": "provider",
            "in": "path",
            "required": True,
            "description": "An unknown provider is `404 not_found`.",
            "schema": {"type": "string", "enum": list(PROVIDERS)},
        },
        "keyId": {
            "name": "keyId",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
        },
        "threadId": {
            "name": "threadId",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
        },
    }


def build_spec() -> dict[str, Any]:
    """The whole document, as a dict (deterministic: the same code gives the same document)."""
    plugin = MarshmallowPlugin(schema_name_resolver=lambda schema: None)
    spec = APISpec(
        title="KeyLM API",
        version=API_VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": "The public HTTP contract of KeyLM (the gateway). JSON bodies with camelCase "
            "keys; every error is the `Error` envelope; every response carries `X-Request-Id`. "
            f"Authentication is the `{COOKIE_NAME}` cookie (`__Host-{COOKIE_NAME}` over HTTPS). CSRF: a "
            "state-changing request that carries the cookie is refused with `403 csrf_failed` unless "
            "its `Origin` (or, without one, its `Referer`) is an accepted origin (APP_BASE_URL, "
            "CSRF_TRUSTED_ORIGINS). Strings in a request body "
            "must not contain NUL (U+0000) or unpaired surrogates (`400 invalid_json`).",
        },
        security=[{"sessionCookie": []}],
        tags=[{"name": name} for name in ("health", "meta", "auth", "keys", "models", "usage", "threads")],
    )
    plugin.converter.add_attribute_function(_documented_field)
    spec.components.security_scheme(
        "sessionCookie",
        {"type": "apiKey", "in": "cookie", "name": COOKIE_NAME, "description": "Set by register/login."},
    )
    spec.components.header(
        "X-Request-Id",
        {
            "description": "The request's id (taken from the request when sane, else generated); "
            "every service logs it.",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        },
    )
    spec.components.header(
        "Retry-After",
        {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}},
    )
    for name, schema in INPUT_COMPONENTS.items():
        spec.components.schema(name, schema=schema)
    for name, schema in OUTPUT_COMPONENTS.items():
        spec.components.schema(name, schema=schema)
    for name, schema in _sse_components().items():
        spec.components.schema(name, schema)
    for name, parameter in _parameters().items():
        spec.components.parameter(name, "path", parameter)
    for path, operations in _operations().items():
        parameters = operations.pop("parameters", None)
        spec.path(path=path, operations=operations, parameters=parameters)
    document = spec.to_dict()
    _tidy(document)
    return document


# What CreateThreadSchema's `check_mode` enforces, which apispec cannot read from a Python validator.
CREATE_THREAD_RULES = [
    {
        "if": {"properties": {"mode": {"const": "byok"}}},
        "then": {"required": ["provider", "model"]},
    },
    {
        "if": {"properties": {"mode": {"const": "free"}}},
        "then": {
            "properties": {"provider": False, "model": False, "keyId": {"type": "null"}},
            "description": "A free thread uses the free model: no provider, model or keyId.",
        },
    },
]


# shared.web.load_json answers `400 invalid_json` for a body with a NUL anywhere (Postgres text
# cannot hold one); every string of a request body, and every string query parameter, says so.
# (Unpaired surrogates are refused too, but JSON Schema cannot name them.)
NO_NUL = "^[^\\u0000]*$"


def _forbid_nul(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        types = prop.get("type", [])
        if "string" in (types if isinstance(types, list) else [types]) and "pattern" not in prop:
            prop["pattern"] = NO_NUL


def _tidy(document: dict[str, Any]) -> None:
    """Outputs: every property required. Inputs: no NUL in strings. Query parameters are never null
    (a query string has no null) and hold no NUL."""
    schemas = document["components"]["schemas"]
    schemas["CreateThreadRequest"]["allOf"] = copy.deepcopy(CREATE_THREAD_RULES)
    for name in INPUT_COMPONENTS:
        _forbid_nul(schemas[name])
    for name in OUTPUT_COMPONENTS:
        schema = schemas[name]
        optional = OPTIONAL_OUTPUT_FIELDS.get(name, set())
        schema["required"] = sorted(p for p in schema["properties"] if p not in optional)
    for operations in document["paths"].values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if isinstance(schema.get("type"), list):
                    types = [t for t in schema["type"] if t != "null"]
                    schema["type"] = types[0] if len(types) == 1 else types
                if "default" in schema and schema["default"] is None:
                    del schema["default"]
                if schema.get("type") == "string" and "pattern" not in schema:
                    schema["pattern"] = NO_NUL  # a NUL never names anything we store


@cache
def openapi_document() -> dict[str, Any]:
    return build_spec()


bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(openapi_document())
