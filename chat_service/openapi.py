"""chat_service's public operations (model lists, threads, the message stream), for the OpenAPI
document (`python -m runner openapi`)."""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, fields, validate

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
from shared.openapi import (
    AUTH_WRITE,
    DATE_TIME,
    PROVIDER_PARAMETER,
    REQUEST_ID_HEADER,
    ServiceDoc,
    body,
    errors,
    nullable,
    ok,
    path_parameter,
    ref,
)
from shared.providers import PROVIDERS

THREAD_MODES = ["free", "byok"]
THREAD_STATUSES = ["active"]
MESSAGE_ROLES = ["user", "assistant"]
MESSAGE_STATUSES = ["complete", "streaming", "stopped", "failed"]


# --- shapes the views build without a schema of their own ---------------------------------------
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
                    "contentSchema": ref(data),
                },
            },
            "required": ["event", "data"],
            "additionalProperties": False,
        }
    components["StreamEvent"] = {
        "description": "One server-sent event of a message stream (`: ping` comments aside).",
        "oneOf": [ref(frame) for frame, _, _ in SSE_EVENTS.values()],
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

PROVIDER_ENUM = {"type": "string", "enum": list(PROVIDERS)}

# A thread's settings as stored (each key only when set): what was asked for, bounded on free threads.
STORED_THREAD_SETTINGS = {
    "type": "object",
    "properties": {
        "temperature": {"type": "number"},
        "maxTokens": {
            "type": "integer",
            "description": "On a free thread always set, and at most `FREE_MAX_OUTPUT_TOKENS`.",
        },
        "topP": {"type": "number"},
        "maxTokensClamped": {
            "type": "boolean",
            "description": "Free threads: true when the requested `maxTokens` was over the ceiling.",
        },
        "maxTokensRequested": {
            "type": "integer",
            "description": "Free threads: the `maxTokens` asked for, when it was clamped.",
        },
    },
    "additionalProperties": False,
}

DOC = ServiceDoc(
    tags=["models", "threads"],
    inputs={
        "RefreshModelsRequest": RefreshModelsSchema,
        "ThreadSettings": ThreadSettingsSchema,
        "CreateThreadRequest": CreateThreadSchema,
        "UpdateThreadRequest": UpdateThreadSchema,
        "SendMessageRequest": SendMessageSchema,
    },
    outputs={
        "Model": ModelSchema,
        "ModelList": ModelListSchema,
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
    },
    raw_schemas={**_sse_components(), "StoredThreadSettings": STORED_THREAD_SETTINGS},
    parameters={
        "provider": PROVIDER_PARAMETER,
        "threadId": path_parameter("threadId", type="string", minLength=1, maxLength=64),
    },
    schema_rules={"CreateThreadRequest": {"allOf": CREATE_THREAD_RULES}},
    field_docs={
        (ThreadSchema, "mode"): {"type": "string", "enum": THREAD_MODES},
        (ThreadSchema, "provider"): PROVIDER_ENUM,
        (ThreadSchema, "keyId"): {"type": ["string", "null"], "description": "The key of a byok thread."},
        (ThreadSchema, "systemPrompt"): {"type": ["string", "null"]},
        (ThreadSchema, "settings"): ref("StoredThreadSettings"),
        (ThreadSchema, "status"): {"type": "string", "enum": THREAD_STATUSES},
        (ThreadSchema, "createdAt"): DATE_TIME,
        (ThreadSchema, "updatedAt"): DATE_TIME,
        (ThreadSchema, "usage"): ref("TokenUsage"),
        (MessageSchema, "role"): {"type": "string", "enum": MESSAGE_ROLES},
        (MessageSchema, "status"): {"type": "string", "enum": MESSAGE_STATUSES},
        (MessageSchema, "providerMessageId"): {"type": ["string", "null"]},
        (MessageSchema, "model"): {
            "type": ["string", "null"],
            "description": "The model that answered (assistant messages); null on user messages.",
        },
        (MessageSchema, "usage"): nullable(ref("TokenUsage")),
        (MessageSchema, "error"): nullable(ref("StreamError")),
        (MessageSchema, "finishReason"): {
            "type": ["string", "null"],
            "description": "`stop`, `length`, `filtered`, `tool` or `other`, when the provider said.",
        },
        (MessageSchema, "historyDropped"): {
            "type": ["integer", "null"],
            "description": "Free threads (assistant messages): how many of the oldest earlier messages were "
            "left out of the history sent, to keep it within `FREE_MAX_HISTORY_CHARS`; null otherwise.",
        },
        (MessageSchema, "createdAt"): DATE_TIME,
        (ModelListSchema, "fetchedAt"): DATE_TIME,
        (ModelListSchema, "expiresAt"): DATE_TIME,
    },
    paths={
        # --- models ------------------------------------------------------------------------
        "/api/providers/{provider}/models": {
            "parameters": ["provider"],
            "get": {
                "tags": ["models"],
                "operationId": "listModels",
                "summary": "The chat models one key can use (cached per key for 24 hours)",
                "parameters": [{"in": "query", "schema": ModelListQuerySchema}],
                "responses": {
                    "200": ok(
                        "The list; `stale: true` when a refresh failed and the cache is served.", "ModelList"
                    ),
                    **errors(
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
            "parameters": ["provider"],
            "post": {
                "tags": ["models"],
                "operationId": "refreshModels",
                "summary": "Fetch the model list from the provider now",
                "requestBody": body("RefreshModelsRequest", required=False),
                "responses": {
                    "200": ok("The fresh list (or the cached one, `stale: true`).", "ModelList"),
                    **errors(
                        400,
                        *AUTH_WRITE,
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
        # --- threads and messages ----------------------------------------------------------
        "/api/threads": {
            "get": {
                "tags": ["threads"],
                "operationId": "listThreads",
                "summary": "The user's threads, newest `updatedAt` first, in cursor pages",
                "parameters": [{"in": "query", "schema": ListThreadsSchema}],
                "responses": {
                    "200": ok("One page.", "ThreadPage"),
                    **errors((400, "`validation_error` (a bad `limit` or `cursor`)"), 401),
                },
            },
            "post": {
                "tags": ["threads"],
                "operationId": "createThread",
                "summary": "Start a thread: `free` (the free model) or `byok` (a model of an active key)",
                "requestBody": body(
                    "CreateThreadRequest",
                    "`byok` needs `provider` and `model`: a model from the catalog of an active key "
                    "(`keyId`, else the most recently validated one); `free` takes neither.",
                ),
                "responses": {
                    "201": ok("Created.", "ThreadResponse"),
                    **errors(
                        (
                            400,
                            "`validation_error` (also: no active key, or a model not in its "
                            "catalog), `invalid_json`",
                        ),
                        *AUTH_WRITE,
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
            "parameters": ["threadId"],
            "get": {
                "tags": ["threads"],
                "operationId": "getThread",
                "summary": "A thread and its messages, oldest first",
                "responses": {"200": ok("The thread.", "ThreadDetail"), **errors(401, 404)},
            },
            "patch": {
                "tags": ["threads"],
                "operationId": "renameThread",
                "summary": "Change the title (the only thing that may change)",
                "requestBody": body("UpdateThreadRequest"),
                "responses": {
                    "200": ok("Renamed.", "ThreadResponse"),
                    **errors(400, *AUTH_WRITE, 404, 413),
                },
            },
            "delete": {
                "tags": ["threads"],
                "operationId": "deleteThread",
                "summary": "Delete a thread and its messages",
                "responses": {"204": ok("Deleted."), **errors(*AUTH_WRITE, 404)},
            },
        },
        "/api/threads/{threadId}/messages": {
            "parameters": ["threadId"],
            "post": {
                "tags": ["threads"],
                "operationId": "sendMessage",
                "summary": "Send a message; the reply streams back as server-sent events",
                "description": _sse_description(),
                "requestBody": body(
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
                        "content": {"text/event-stream": {"schema": ref("StreamEvent")}},
                        "x-sse-events": {
                            name: {"description": text, "data": ref(data)}
                            for name, (_, data, text) in SSE_EVENTS.items()
                        },
                    },
                    **errors(
                        400,
                        *AUTH_WRITE,
                        404,
                        (
                            409,
                            "`request_in_progress` (retryable: the same clientRequestId is still "
                            "streaming), `idempotency_mismatch` (the clientRequestId was used for "
                            "different content), `key_not_active` (byok thread without an active key), "
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
    },
)
