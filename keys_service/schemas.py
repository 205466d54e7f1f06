"""Request and response shapes of keys_service (marshmallow, at the edge only)."""

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from shared.db import isoformat
from shared.providers import PROVIDERS


class StrippedString(fields.String):
    """A string with surrounding whitespace removed before it is validated."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


# No message below quotes the input ({input}): a rejected value may be a real key.
API_KEY = [
    validate.Length(min=1, max=500, error="An API key is 1 to 500 characters."),
    validate.Regexp(r"^[\x21-\x7e]+$", error="An API key is printable ASCII without spaces."),
]


class AddKeySchema(StrictSchema):
    apiKey = StrippedString(required=True, load_only=True, validate=API_KEY)
    label = StrippedString(
        load_default=None,
        allow_none=True,
        load_only=True,
        validate=validate.Length(max=100, error="A label is at most 100 characters."),
    )

    @validates_schema
    def label_does_not_hold_the_key(self, data, **kwargs):
        label, api_key = data.get("label"), data.get("apiKey")
        if label and api_key and api_key in label:
            raise ValidationError("A label must not contain the key itself.", "label")


class ResolveKeySchema(StrictSchema):
    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))
    keyId = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))


class UseFailedSchema(StrictSchema):
    reason = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_]{0,63}$", error="A reason is a snake_case code such as auth_failed."
        ),
    )
    markInvalid = fields.Boolean(load_default=False)


class KeySchema(Schema):
    """A key as users see it. Deliberately no field that could hold the plaintext or ciphertext."""

    id = fields.String(dump_only=True)
    provider = fields.String(dump_only=True)
    label = fields.String(dump_only=True)
    keyMask = fields.String(attribute="key_mask", dump_only=True)
    status = fields.String(dump_only=True)
    lastValidatedAt = fields.Function(lambda key: isoformat(key.last_validated_at), dump_only=True)
    lastUsedAt = fields.Function(lambda key: isoformat(key.last_used_at), dump_only=True)
    createdAt = fields.Function(lambda key: isoformat(key.created_at), dump_only=True)
