"""chat_service request and response shapes (marshmallow, at the edge only)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.db import isoformat
from shared.providers import PROVIDERS


class JSONNumber(fields.Float):
    """A JSON number only: marshmallow's Float would also take the string "0.5"."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._validated(value)


class JSONInteger(fields.Integer):
    """A JSON integer: 200 or 200.0 (the same JSON number), never 1.5, "3" or true."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._validated(value)


class ThreadSettingsSchema(Schema):
    temperature = JSONNumber(allow_none=True, validate=validate.Range(0, 2), allow_nan=False)
    maxTokens = JSONInteger(allow_none=True, validate=validate.Range(1, 200_000))
    topP = JSONNumber(allow_none=True, validate=validate.Range(0, 1), allow_nan=False)


class CreateThreadSchema(Schema):
    mode = fields.String(required=True, validate=validate.OneOf(["free", "byok"]))
    provider = fields.String(validate=validate.OneOf(PROVIDERS))
    model = fields.String(validate=validate.Length(min=1, max=200))
    keyId = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    title = fields.String(allow_none=True, validate=validate.Length(max=200))
    systemPrompt = fields.String(allow_none=True, validate=validate.Length(max=20_000))
    settings = fields.Nested(ThreadSettingsSchema, allow_none=True)

    @validates_schema
    def check_mode(self, data, **kwargs):
        if data["mode"] == "byok":
            missing = {f: ["Required for a byok thread."] for f in ("provider", "model") if not data.get(f)}
            if missing:
                raise ValidationError(missing)
        else:
            extra = [f for f in ("provider", "model", "keyId") if data.get(f)]
            if extra:
                raise ValidationError({f: ["KeyLM Free threads use the free model."] for f in extra})


class UpdateThreadSchema(Schema):
    """Only the title may change: provider and model are locked at creation."""

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))


class ListThreadsSchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))


class ModelListQuerySchema(Schema):
    keyId = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    refresh = fields.Boolean(load_default=False)


class RefreshModelsSchema(Schema):
    keyId = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))


class SendMessageSchema(Schema):
    content = fields.String(required=True, validate=validate.Length(min=1, max=32_000))
    clientRequestId = fields.String(required=True, validate=validate.Length(min=1, max=128))


def _usage(source) -> dict | None:
    return {
        "promptTokens": source.prompt_tokens,
        "outputTokens": source.output_tokens,
        "totalTokens": source.total_tokens,
    }


class ThreadSchema(Schema):
    id = fields.String()
    mode = fields.String()
    provider = fields.String()
    model = fields.String()
    keyId = fields.String(attribute="key_id")
    title = fields.String()
    systemPrompt = fields.String(attribute="system_prompt")
    settings = fields.Dict()
    status = fields.String()
    createdAt = fields.Function(lambda t: isoformat(t.created_at))
    updatedAt = fields.Function(lambda t: isoformat(t.updated_at))
    usage = fields.Function(_usage)


class MessageSchema(Schema):
    id = fields.String()
    threadId = fields.String(attribute="thread_id")
    role = fields.String()
    content = fields.String()
    status = fields.String()
    providerMessageId = fields.String(attribute="provider_message_id")
    clientRequestId = fields.String(attribute="client_request_id")
    model = fields.String()
    usage = fields.Function(lambda m: (m.metadata_ or {}).get("usage"))
    error = fields.Function(lambda m: (m.metadata_ or {}).get("error"))
    finishReason = fields.Function(lambda m: (m.metadata_ or {}).get("finishReason"))
    # Free threads: how many of the oldest earlier messages were left out of the history sent.
    historyDropped = fields.Function(lambda m: (m.metadata_ or {}).get("historyDropped"))
    createdAt = fields.Function(lambda m: isoformat(m.created_at))


thread_schema = ThreadSchema()
message_schema = MessageSchema()
