"""Request and response shapes of quota_service (marshmallow, at the edge only)."""

from marshmallow import Schema, fields, validate

from shared.db import isoformat


class ReserveSchema(Schema):
    estimatedTokens = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0))


class ReleaseSchema(Schema):
    reservationId = fields.String(required=True, validate=validate.Length(min=1, max=64))


class SettleSchema(Schema):
    reservationId = fields.String(required=True, validate=validate.Length(min=1, max=64))
    usedTokens = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=10_000_000))


class BucketUsageSchema(Schema):
    used = fields.Integer(dump_only=True)
    limit = fields.Integer(dump_only=True)
    remaining = fields.Integer(dump_only=True)


class FreeUsageSchema(Schema):
    """The snapshot of docs/api.md's `GET /api/usage/free`."""

    day = fields.Function(lambda usage: usage.day.isoformat(), dump_only=True)
    model = fields.String(dump_only=True)
    user = fields.Nested(BucketUsageSchema, dump_only=True)
    global_pool = fields.Nested(BucketUsageSchema, data_key="global", dump_only=True)
    tokens = fields.Nested(BucketUsageSchema, dump_only=True)
    resetsAt = fields.Function(lambda usage: isoformat(usage.resets_at), dump_only=True)
    available = fields.Boolean(dump_only=True)
    showKeyReminder = fields.Boolean(attribute="show_key_reminder", dump_only=True)
    requiresVerifiedEmail = fields.Boolean(attribute="requires_verified_email", dump_only=True)
