"""Request and response shapes of auth_service (marshmallow, at the edge only)."""

from marshmallow import Schema, fields, validate

from shared.db import isoformat

PASSWORD = validate.Length(min=8, max=128, error="Password must be 8 to 128 characters.")


class CredentialsSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, load_only=True, validate=PASSWORD)


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))


class ResetRequestSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))


class VerifyEmailSchema(Schema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=256))


class ResetConfirmSchema(Schema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=256))
    password = fields.String(required=True, load_only=True, validate=PASSWORD)


class UserSchema(Schema):
    id = fields.String(dump_only=True)
    email = fields.String(dump_only=True)
    createdAt = fields.Function(lambda user: isoformat(user.created_at), dump_only=True)
    emailVerified = fields.Function(lambda user: user.email_verified_at is not None, dump_only=True)
