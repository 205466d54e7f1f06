"""The pieces each package uses to describe its public operations for the OpenAPI 3.1 document.

Every service states its own operations, bodies and components in its `openapi.py` as a
`ServiceDoc`; `runner/openapi.py` (`python -m runner openapi`) gathers them into `docs/openapi.json`,
which the gateway serves. No running service imports any of this: it is build-time only.

Output schemas in the services use `fields.Function` for computed values and say nothing about
`null`; a `ServiceDoc`'s `field_docs` gives those fields their documented type. A unit test keeps
every `Function`/`Method` field of a documented schema covered, so a new computed field cannot ship
untyped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from shared.providers import PROVIDERS

OPENAPI_VERSION = "3.1.0"

DATE_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601 UTC, `Z` suffix."}

# shared.web.load_json answers `400 invalid_json` for a body with a NUL anywhere (Postgres text
# cannot hold one); every string of a request body, and every string query parameter, says so.
# (Unpaired surrogates are refused too, but JSON Schema cannot name them.)
NO_NUL = "^[^\\u0000]*$"


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.1: `null` is a type like any other."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": [*types, "null"]}


def ref(name: str) -> dict[str, str]:
    """A reference to a named component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


# --- the error envelope (shared.errors), the same for every service -----------------------------
class ErrorBodySchema(Schema):
    code = fields.String(
        required=True,
        metadata={
            "description": "Machine-readable, snake_case: `validation_error`, `invalid_json`, "
            "`unauthenticated`, `csrf_failed`, `email_not_verified`, `not_found`, `email_taken`, "
            "`key_not_active`, `request_in_progress`, `idempotency_mismatch`, `request_too_large`, "
            "`rate_limited`, `free_quota_exhausted`, "
            "`upstream_error`, `upstream_unavailable`, `service_unavailable`, `internal_error`, ...",
            "examples": ["validation_error"],
        },
    )
    message = fields.String(required=True, metadata={"description": "For people; never a secret."})
    retryable = fields.Boolean(required=True)
    details = fields.Dict(
        metadata={
            "description": "Per code: `fields` (field -> list of messages, nested for nested objects) "
            "for `validation_error`; `resetsAt` and `bucket` (`user`, `global` or `tokens`) for "
            "`free_quota_exhausted`."
        }
    )


class ErrorSchema(Schema):
    """The one error envelope of every service and the gateway."""

    error = fields.Nested(ErrorBodySchema, required=True)


# --- responses and bodies -----------------------------------------------------------------------
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
# What the gateway answers before a request reaches a service.
WRITE = (403, 413)  # a cookie-carrying write without our Origin; a body over MAX_BODY_BYTES
AUTH_WRITE = (401, 403)
ERRORS_COMMON = ("5XX",)
NO_SESSION: list[dict[str, list[str]]] = []  # `security: []`: no session needed


def json_content(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": ref(schema)}}


def error_response(status: int | str, description: str | None = None) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": REQUEST_ID_HEADER}
    if status == 429:
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return {
        "description": description or ERROR_DESCRIPTIONS[status],
        "headers": headers,
        "content": json_content("Error"),
    }


def errors(*statuses: int | tuple[int, str]) -> dict[str, Any]:
    """Error responses by status (a `(status, description)` pair overrides the usual words), and 5XX."""
    responses: dict[str, Any] = {}
    for status in (*statuses, *ERRORS_COMMON):
        code, description = status if isinstance(status, tuple) else (status, None)
        responses[str(code)] = error_response(code, description)
    return responses


def ok(description: str, schema: str | None = None, headers: dict[str, Any] | None = None) -> dict:
    """A success response, with its JSON body's component when it has one."""
    response: dict[str, Any] = {
        "description": description,
        "headers": {"X-Request-Id": REQUEST_ID_HEADER, **(headers or {})},
    }
    if schema:
        response["content"] = json_content(schema)
    return response


def body(schema: str, description: str | None = None, required: bool = True) -> dict[str, Any]:
    """A JSON request body."""
    request_body: dict[str, Any] = {"required": required, "content": json_content(schema)}
    if description:
        request_body["description"] = description
    return request_body


def path_parameter(name: str, description: str | None = None, **schema: Any) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


# keys_service's and chat_service's routes both name a provider in their path.
PROVIDER_PARAMETER = path_parameter(
    "provider", "An unknown provider is `404 not_found`.", type="string", enum=list(PROVIDERS)
)


@dataclass
class ServiceDoc:
    """What one package contributes to the document: its operations and the components they use.

    Inputs (request schemas) and outputs (response schemas) are named marshmallow schemas; an
    output lists every property as required (a dump always writes every field) except those in
    `optional_outputs`. `field_docs` replaces what apispec guesses for a field (computed fields,
    nullable ones); `field_notes` adds words for a rule JSON Schema cannot state; `schema_rules`
    adds keywords to a converted component (a rule a Python validator enforces).
    """

    paths: dict[str, dict[str, Any]]
    tags: list[str] = field(default_factory=list)
    inputs: dict[str, type[Schema]] = field(default_factory=dict)
    outputs: dict[str, type[Schema]] = field(default_factory=dict)
    raw_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    security_schemes: dict[str, dict[str, Any]] = field(default_factory=dict)
    field_docs: dict[tuple[type[Schema], str], dict[str, Any]] = field(default_factory=dict)
    field_notes: dict[tuple[type[Schema], str], str] = field(default_factory=dict)
    schema_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    optional_outputs: dict[str, set[str]] = field(default_factory=dict)


# The parts every document has, whoever's operations it holds.
COMMON = ServiceDoc(
    paths={},
    outputs={"ErrorBody": ErrorBodySchema, "Error": ErrorSchema},
    headers={
        "X-Request-Id": {
            "description": "The request's id (taken from the request when sane, else generated); "
            "every service logs it.",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        },
        "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}},
    },
    optional_outputs={"ErrorBody": {"details"}},  # only present for some codes
)


def _merge(target: dict, source: dict, what: str) -> None:
    for name, value in source.items():
        if name in target and target[name] != value:
            raise ValueError(f"two packages describe {what} {name!r} differently")
        target[name] = value


def merge_docs(docs: list[ServiceDoc]) -> ServiceDoc:
    """One ServiceDoc from several; the same name described twice must be described the same."""
    merged = ServiceDoc(paths={})
    for doc in [COMMON, *docs]:
        for name in ServiceDoc.__dataclass_fields__:
            if name == "tags":
                merged.tags += [tag for tag in doc.tags if tag not in merged.tags]
            else:
                _merge(getattr(merged, name), copy.deepcopy(getattr(doc, name)), name)
    return merged


def build_document(info: dict[str, Any], security: list[dict[str, list[str]]], docs: list[ServiceDoc]):
    """The whole document, as a dict (deterministic: the same code gives the same document)."""
    merged = merge_docs(docs)
    plugin = MarshmallowPlugin(schema_name_resolver=lambda schema: None)
    spec = APISpec(
        title=info["title"],
        version=info["version"],
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": info["description"]},
        security=security,
        tags=[{"name": name} for name in merged.tags],
    )
    plugin.converter.add_attribute_function(_field_documenter(merged.field_docs, merged.field_notes))
    for name, scheme in merged.security_schemes.items():
        spec.components.security_scheme(name, scheme)
    for name, header in merged.headers.items():
        spec.components.header(name, header)
    for name, schema in (*merged.inputs.items(), *merged.outputs.items()):
        spec.components.schema(name, schema=schema)
    for name, schema in merged.raw_schemas.items():
        spec.components.schema(name, schema)
    for name, parameter in merged.parameters.items():
        spec.components.parameter(name, parameter["in"], parameter)
    for path, operations in merged.paths.items():
        parameters = operations.pop("parameters", None)
        spec.path(path=path, operations=operations, parameters=parameters)
    document = spec.to_dict()
    _tidy(document, merged)
    return document


def _field_documenter(field_docs, field_notes):
    """An apispec attribute function: apply field_docs (replacing what apispec guessed) and notes."""

    def documented_field(self, field, ret, **kwargs) -> dict[str, Any]:
        parent = field.parent
        if not isinstance(parent, Schema):
            return {}
        for cls in type(parent).__mro__:
            doc = field_docs.get((cls, field.name))
            if doc is not None:
                kept = {k: v for k, v in ret.items() if k in ("readOnly", "writeOnly", "description")}
                ret.clear()
                return {**kept, **copy.deepcopy(doc)}
            note = field_notes.get((cls, field.name))
            if note is not None:
                return {"description": note}
        return {}

    return documented_field


def _forbid_nul(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        types = prop.get("type", [])
        if "string" in (types if isinstance(types, list) else [types]) and "pattern" not in prop:
            prop["pattern"] = NO_NUL


def _tidy(document: dict[str, Any], merged: ServiceDoc) -> None:
    """Outputs: every property required. Inputs: no NUL in strings. Query parameters are never null
    (a query string has no null) and hold no NUL."""
    schemas = document["components"]["schemas"]
    for name, rules in merged.schema_rules.items():
        schemas[name].update(copy.deepcopy(rules))
    for name in merged.inputs:
        _forbid_nul(schemas[name])
    for name in merged.outputs:
        schema = schemas[name]
        optional = merged.optional_outputs.get(name, set())
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
