"""The gateway's part of the OpenAPI document (`python -m runner openapi` writes it): the API's
title and description, the session cookie, and the operations the gateway answers itself
(health, this document, the reference page). Each service describes its own operations in its own
`openapi.py`; the gateway serves the committed `docs/openapi.json` (gateway/reference.py)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gateway.sessions import COOKIE_NAME
from shared.openapi import NO_SESSION, REQUEST_ID_HEADER, ServiceDoc, errors, ok

API_VERSION = "1.0.0"
HEALTH_STATES = ["ok", "degraded", "down"]

INFO = {
    "title": "KeyLM API",
    "version": API_VERSION,
    "description": "The public HTTP contract of KeyLM (the gateway). JSON bodies with camelCase "
    "keys; every error is the `Error` envelope; every response carries `X-Request-Id`. "
    f"Authentication is the `{COOKIE_NAME}` cookie (`__Host-{COOKIE_NAME}` over HTTPS). CSRF: a "
    "state-changing request that carries the cookie is refused with `403 csrf_failed` unless "
    "its `Origin` (or, without one, its `Referer`) is an accepted origin (APP_BASE_URL, "
    "CSRF_TRUSTED_ORIGINS). Strings in a request body "
    "must not contain NUL (U+0000) or unpaired surrogates (`400 invalid_json`).",
}
SECURITY = [{"sessionCookie": []}]


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


class ProviderSchema(Schema):
    id = fields.String(required=True, metadata={"description": "The id used in every provider path."})
    name = fields.String(required=True, metadata={"description": "The display name."})
    keyPlaceholder = fields.String(required=True, metadata={"description": "What a key looks like."})
    keyUrl = fields.String(required=True, metadata={"description": "Where a user creates a key."})
    monogram = fields.String(required=True, metadata={"description": "A letter for the badge."})
    color = fields.String(required=True, metadata={"description": "The badge colour (`#rrggbb`)."})
    hint = fields.String(required=True, metadata={"description": "One line for the picker; may be empty."})


class ProviderListSchema(Schema):
    providers = fields.List(fields.Nested(ProviderSchema), required=True)


DOC = ServiceDoc(
    tags=["health", "meta"],
    outputs={"Health": HealthSchema, "Provider": ProviderSchema, "ProviderList": ProviderListSchema},
    security_schemes={
        "sessionCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": COOKIE_NAME,
            "description": "Set by register/login.",
        }
    },
    headers={
        # auth_service's register, login and logout answers refer to it.
        "Set-Cookie": {
            "description": f"`{COOKIE_NAME}=...; HttpOnly; SameSite=Lax; Path=/`; with "
            "COOKIE_SECURE=true (the default when APP_BASE_URL is https) it is "
            f"`__Host-{COOKIE_NAME}` and `Secure`: the session.",
            "schema": {"type": "string"},
        }
    },
    paths={
        "/api/healthz": {
            "get": {
                "tags": ["health"],
                "operationId": "getHealth",
                "summary": "Health of the gateway and every internal service",
                "security": NO_SESSION,
                "responses": {
                    "200": ok("Every service is up (`degraded` when limits run in memory).", "Health"),
                    "503": ok("A service is down or degraded; it is marked.", "Health"),
                    **errors(),
                },
            }
        },
        "/api/providers": {
            "get": {
                "tags": ["meta"],
                "operationId": "listProviders",
                "summary": "The providers a key can be added for, in display order",
                "description": "Public metadata from the provider registry; the web client builds "
                "its provider lists, badges and key hints from it.",
                "security": NO_SESSION,
                "responses": {"200": ok("The providers.", "ProviderList"), **errors()},
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
                    **errors(),
                },
            }
        },
        "/api/docs": {
            "get": {
                "tags": ["meta"],
                "operationId": "getApiReference",
                "summary": "This document as a page to read in a browser",
                "security": NO_SESSION,
                "responses": {
                    "200": {
                        "description": "The API reference page (HTML; its scripts render this document).",
                        "headers": {"X-Request-Id": REQUEST_ID_HEADER},
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    **errors(),
                },
            }
        },
    },
)
