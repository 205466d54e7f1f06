"""auth_service's public operations, for the OpenAPI document (`python -m runner openapi`)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from auth_service.schemas import (
    CredentialsSchema,
    LoginSchema,
    ResetConfirmSchema,
    ResetRequestSchema,
    UserSchema,
    VerifyEmailSchema,
)
from shared.openapi import (
    AUTH_WRITE,
    DATE_TIME,
    NO_SESSION,
    WRITE,
    ServiceDoc,
    body,
    errors,
    ok,
)


class UserEnvelopeSchema(Schema):
    user = fields.Nested(UserSchema, required=True)


class OkSchema(Schema):
    ok = fields.Boolean(required=True, validate=validate.Equal(True))


# The gateway turns the session this service issues into its cookie (components/headers/Set-Cookie).
SET_COOKIE = {"Set-Cookie": {"$ref": "#/components/headers/Set-Cookie"}}

DOC = ServiceDoc(
    tags=["auth"],
    inputs={
        "RegisterRequest": CredentialsSchema,
        "LoginRequest": LoginSchema,
        "PasswordResetRequest": ResetRequestSchema,
        "PasswordResetConfirm": ResetConfirmSchema,
        "EmailVerificationConfirm": VerifyEmailSchema,
    },
    outputs={"Ok": OkSchema, "User": UserSchema, "UserResponse": UserEnvelopeSchema},
    field_docs={
        (UserSchema, "createdAt"): DATE_TIME,
        (UserSchema, "emailVerified"): {
            "type": "boolean",
            "description": "True once the user opened an email confirmation link.",
        },
    },
    field_notes={
        (CredentialsSchema, "email"): "Checked with marshmallow's `Email` rule, which is stricter than "
        "the `email` format: the domain is a dotted name whose last label has 2 or more characters (or "
        "an IPv4 literal, or `localhost`). Compared case-insensitively.",
    },
    paths={
        "/api/auth/register": {
            "post": {
                "tags": ["auth"],
                "operationId": "register",
                "summary": "Create an account and sign in",
                "security": NO_SESSION,
                "requestBody": body(
                    "RegisterRequest",
                    "Passwords are 8 to 128 characters; long ones are pre-hashed, never truncated.",
                ),
                "responses": {
                    "201": ok("Registered and signed in.", "UserResponse", SET_COOKIE),
                    **errors(400, *WRITE, (409, "`email_taken`"), 429),
                },
            }
        },
        "/api/auth/login": {
            "post": {
                "tags": ["auth"],
                "operationId": "login",
                "summary": "Sign in",
                "security": NO_SESSION,
                "requestBody": body("LoginRequest"),
                "responses": {
                    "200": ok("Signed in.", "UserResponse", SET_COOKIE),
                    **errors(
                        400,
                        (401, "`invalid_credentials` (the same for an unknown email and a wrong password)"),
                        *WRITE,
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
                "responses": {"204": ok("Signed out.", headers=SET_COOKIE), **errors(*AUTH_WRITE)},
            }
        },
        "/api/auth/me": {
            "get": {
                "tags": ["auth"],
                "operationId": "getMe",
                "summary": "The signed-in user",
                "responses": {"200": ok("The user.", "UserResponse"), **errors(401)},
            }
        },
        "/api/auth/password-reset/request": {
            "post": {
                "tags": ["auth"],
                "operationId": "requestPasswordReset",
                "summary": "Mail a one-time reset link (the same answer whether or not the email exists)",
                "security": NO_SESSION,
                "requestBody": body("PasswordResetRequest"),
                "responses": {"202": ok("Accepted.", "Ok"), **errors(400, *WRITE, 429)},
            }
        },
        "/api/auth/password-reset/confirm": {
            "post": {
                "tags": ["auth"],
                "operationId": "confirmPasswordReset",
                "summary": "Set a new password with a reset token; every session of the user ends",
                "security": NO_SESSION,
                "requestBody": body("PasswordResetConfirm"),
                "responses": {
                    "200": ok("Password changed.", "Ok"),
                    **errors(
                        (
                            400,
                            "`validation_error`, `invalid_json`, `invalid_token` (unknown, used or "
                            "expired token)",
                        ),
                        *WRITE,
                        429,
                    ),
                },
            }
        },
        "/api/auth/email-verification/request": {
            "post": {
                "tags": ["auth"],
                "operationId": "requestEmailVerification",
                "summary": "Mail a new single-use email confirmation link (nothing when already confirmed)",
                "responses": {"202": ok("Accepted.", "Ok"), **errors(*AUTH_WRITE, 413, 429)},
            }
        },
        "/api/auth/email-verification/confirm": {
            "post": {
                "tags": ["auth"],
                "operationId": "confirmEmailVerification",
                "summary": "Confirm the email of the token's user (the link's token works once)",
                "security": NO_SESSION,
                "requestBody": body("EmailVerificationConfirm"),
                "responses": {
                    "200": ok("Confirmed.", "UserResponse"),
                    **errors(
                        (
                            400,
                            "`validation_error`, `invalid_json`, `invalid_token` (unknown, used or "
                            "expired token)",
                        ),
                        *WRITE,
                        429,
                    ),
                },
            }
        },
    },
)
