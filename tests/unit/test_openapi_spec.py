"""The OpenAPI document (docs/openapi.json, written by `python -m runner openapi` from each package's
`openapi.py`): valid, complete, committed as built, and true to the code that serves it.

- the committed file is exactly what the code builds (run `make openapi` after changing an API);
- it validates as OpenAPI 3.1 (openapi-spec-validator);
- every /api route of the gateway's url_map is in it and every operation in it is routed;
- every public /api route of each service is in it, and vice versa (the gateway forwards
  catch-alls, so the services' route tables are where the real operations live);
- what apispec cannot read from Python (computed fields, a schema-level validator) is documented,
  and agrees with the marshmallow schemas on sample payloads.
"""

from __future__ import annotations

import importlib
import json
import re

import pytest
from flask import Flask
from jsonschema import Draft202012Validator
from marshmallow import Schema, ValidationError, fields
from openapi_spec_validator import validate as validate_openapi
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map

from chat_service.schemas import CreateThreadSchema
from gateway.security import CONTENT_SECURITY_POLICY
from runner.openapi import DOCUMENT_PATH, SERVICE_DOCS, build_spec, render_spec, write_openapi
from shared.errors import InvalidJSON
from shared.openapi import NO_NUL, merge_docs
from shared.providers import PROVIDERS
from shared.web import load_json
from tests.conftest import make_settings

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
SERVICES = ("auth_service", "keys_service", "chat_service", "quota_service")
GATEWAY_ONLY = {
    ("GET", "/api/healthz"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/docs"),
    ("GET", "/api/providers"),
}
SAMPLE_PATH_VALUES = {"provider": "openai", "keyId": "key-1", "threadId": "thread-1"}
ALL_DOCS = merge_docs(SERVICE_DOCS)
FIELD_DOCS, INPUT_COMPONENTS, OUTPUT_COMPONENTS = ALL_DOCS.field_docs, ALL_DOCS.inputs, ALL_DOCS.outputs


@pytest.fixture(scope="module")
def spec() -> dict:
    return build_spec()


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> dict:
    var_dir = tmp_path_factory.mktemp("openapi-apps") / "var"
    names = (*SERVICES, "gateway")
    return {name: importlib.import_module(f"{name}.app").create_app(make_settings(var_dir)) for name in names}


def operations(spec: dict) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PATH_VALUES[m.group(1)], path)


def shape(rule_or_path: str) -> str:
    """`/api/threads/<thread_id>` and `/api/threads/{threadId}` both become `/api/threads/{}`."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", rule_or_path)


def api_rules(url_map: Map):
    for rule in url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            yield rule, sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def test_the_committed_document_is_what_the_code_builds():
    """docs/openapi.json is what the gateway serves: a change to a schema or an operation table
    without `make openapi` fails here."""
    assert DOCUMENT_PATH.read_text(encoding="utf-8") == render_spec(), "run `make openapi`"
    assert write_openapi(check=True) == 0


def test_the_document_is_valid_openapi_3_1(spec):
    assert spec["openapi"] == "3.1.0"
    validate_openapi(spec)
    json.dumps(spec)  # plain JSON all the way down


def test_the_document_is_deterministic(spec):
    assert build_spec() == spec


def test_every_operation_is_routed_by_the_gateway(spec, apps):
    adapter = apps["gateway"].url_map.bind("localhost")
    for method, path in sorted(operations(spec)):
        try:
            adapter.match(concrete(path), method=method)
        except (NotFound, MethodNotAllowed) as exc:
            pytest.fail(f"{method} {path} is documented but the gateway does not route it: {exc!r}")


def test_every_gateway_api_route_is_documented(spec, apps):
    documented = operations(spec)
    adapter = apps["gateway"].url_map.bind("localhost")
    routed_through: dict[str, set[tuple[str, str]]] = {}
    for method, path in documented:
        rule, _ = adapter.match(concrete(path), method=method, return_rule=True)
        routed_through.setdefault(rule.rule, set()).add((method, path))
    for rule, methods in api_rules(apps["gateway"].url_map):
        if "<path:" in rule.rule:
            # A catch-all forwards whatever matches to the owning service (whose own routes are
            # compared below); it must carry at least one documented operation.
            assert routed_through.get(rule.rule), f"no documented operation goes through {rule.rule}"
            continue
        for method in methods:
            assert any(m == method and shape(p) == shape(rule.rule) for m, p in documented), (
                f"the gateway serves {method} {rule.rule}, which the OpenAPI document lacks"
            )


def test_the_services_public_routes_and_the_document_agree(spec, apps):
    served: set[tuple[str, str]] = set()
    for name in SERVICES:
        for rule, methods in api_rules(apps[name].url_map):
            served |= {(method, shape(rule.rule)) for method in methods}
    documented = {(method, shape(path)) for method, path in operations(spec)}
    assert documented - {(m, shape(p)) for m, p in GATEWAY_ONLY} == served


def test_the_document_is_served_without_a_session(apps):
    client = apps["gateway"].test_client()
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_json() == build_spec()
    assert response.data == DOCUMENT_PATH.read_bytes()
    assert "Set-Cookie" not in response.headers


def test_the_reference_page_is_served_without_a_session_under_the_strict_csp(apps):
    response = apps["gateway"].test_client().get("/api/docs")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert b'src="/static/vendor/swagger-ui-bundle.js"' in response.data
    assert "Set-Cookie" not in response.headers


def test_cookie_auth_is_the_default_and_public_operations_opt_out(spec):
    assert spec["components"]["securitySchemes"]["sessionCookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "keylm_session",
        "description": "Set by register/login.",
    }
    assert spec["security"] == [{"sessionCookie": []}]
    public = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and operation.get("security") == []
    }
    assert public == {
        ("GET", "/api/healthz"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/docs"),
        ("GET", "/api/providers"),
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/login"),
        ("POST", "/api/auth/password-reset/request"),
        ("POST", "/api/auth/password-reset/confirm"),
        ("POST", "/api/auth/email-verification/confirm"),
    }


def test_every_error_response_is_the_shared_envelope(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation["responses"]
            assert "5XX" in responses, f"{method} {path}"
            for status, response in responses.items():
                assert "X-Request-Id" in response["headers"], f"{method} {path} {status}"
                if status.startswith(("4", "5")) and path != "/api/healthz":
                    assert response["content"] == {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    }, f"{method} {path} {status}"
            if operation.get("security") != []:
                assert "401" in responses, f"{method} {path}"
            if method in ("post", "patch", "delete"):
                assert "403" in responses, f"{method} {path} (csrf_failed)"
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), f"{method} {path}"
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["code", "message", "retryable"]


def test_the_message_stream_documents_each_event(spec):
    operation = spec["paths"]["/api/threads/{threadId}/messages"]["post"]
    ok = operation["responses"]["200"]
    assert ok["content"] == {"text/event-stream": {"schema": {"$ref": "#/components/schemas/StreamEvent"}}}
    assert set(ok["x-sse-events"]) == {"message.created", "delta", "usage", "done", "error"}
    schemas = spec["components"]["schemas"]
    frames = [ref["$ref"].rsplit("/", 1)[1] for ref in schemas["StreamEvent"]["oneOf"]]
    by_event = {schemas[f]["properties"]["event"]["const"]: schemas[f]["properties"]["data"] for f in frames}
    assert {name: data["contentSchema"] for name, data in by_event.items()} == {
        name: event["data"] for name, event in ok["x-sse-events"].items()
    }
    assert all(data["contentMediaType"] == "application/json" for data in by_event.values())
    assert {"409", "429"} <= set(operation["responses"])


def test_path_and_query_parameters(spec):
    parameters = spec["components"]["parameters"]
    assert parameters["provider"]["schema"] == {"type": "string", "enum": list(PROVIDERS)}
    assert {parameters[n]["in"] for n in parameters} == {"path"}
    for path, item in spec["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["$ref"].rsplit("/", 1)[1] for p in item.get("parameters", [])}
        assert names == declared, path
    query = {
        (path, p["name"]): p["schema"]
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
        for p in op.get("parameters", [])
        if p.get("in") == "query"
    }
    assert query == {
        ("/api/threads", "limit"): {"type": "integer", "default": 20, "minimum": 1, "maximum": 100},
        ("/api/threads", "cursor"): {"type": "string", "maxLength": 200, "pattern": NO_NUL},
        ("/api/providers/{provider}/models", "keyId"): {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "pattern": NO_NUL,
        },
        ("/api/providers/{provider}/models", "refresh"): {"type": "boolean", "default": False},
    }


def test_no_string_of_a_request_may_hold_a_nul(spec):
    """shared.web.load_json refuses a NUL anywhere in a body (400 invalid_json): documented."""
    assert re.fullmatch(NO_NUL, "ok") and not re.fullmatch(NO_NUL, "a\x00b")
    schemas = spec["components"]["schemas"]
    strings = [
        (name, prop_name, prop)
        for name in INPUT_COMPONENTS
        for prop_name, prop in schemas[name]["properties"].items()
        if "string" in (prop["type"] if isinstance(prop.get("type"), list) else [prop.get("type")])
    ]
    assert len(strings) > 10
    for name, prop_name, prop in strings:
        assert "pattern" in prop, f"{name}.{prop_name}"
        assert not re.fullmatch(prop["pattern"], "a\x00b"), f"{name}.{prop_name}"


def test_inputs_reject_unknown_fields_and_outputs_list_every_field(spec):
    schemas = spec["components"]["schemas"]
    for name in INPUT_COMPONENTS:
        assert schemas[name]["additionalProperties"] is False, name
    for name in OUTPUT_COMPONENTS:
        schema = schemas[name]
        if name != "Model":  # docs/api.md: `{id, displayName, contextWindow?, ...}`
            assert schema["additionalProperties"] is False, name
        assert set(schema["required"]) | ({"details"} if name == "ErrorBody" else set()) == set(
            schema["properties"]
        ), name


def test_property_names_are_camel_case(spec):
    def walk(node):
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                yield key
                yield from walk(value)
            for key, value in node.items():
                if key != "properties":
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    names = set(walk(spec["components"]))
    assert names
    assert not {n for n in names if not re.fullmatch(r"[a-z][a-zA-Z0-9]*", n)}


def test_enums(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["Key"]["properties"]["status"]["enum"] == ["active", "invalid", "revoked"]
    assert schemas["Key"]["properties"]["provider"]["enum"] == list(PROVIDERS)
    assert schemas["Thread"]["properties"]["mode"]["enum"] == ["free", "byok"]
    assert schemas["CreateThreadRequest"]["properties"]["mode"]["enum"] == ["free", "byok"]
    assert schemas["Message"]["properties"]["status"]["enum"] == [
        "complete",
        "streaming",
        "stopped",
        "failed",
    ]
    assert schemas["Message"]["properties"]["role"]["enum"] == ["user", "assistant"]


UNTYPED_FIELDS = (fields.Function, fields.Method, fields.Raw, fields.Dict)


def test_every_computed_output_field_has_a_documented_type():
    """A `fields.Function` (or Raw, or Dict) tells apispec nothing: each needs an entry in FIELD_DOCS."""
    undocumented = []
    for schema_class in OUTPUT_COMPONENTS.values():
        if schema_class.__module__.endswith(".openapi"):
            continue  # written for the docs (a package's openapi.py), typed where they are declared
        for name, field in schema_class().fields.items():
            if type(field) in UNTYPED_FIELDS:
                documented = any((cls, name) in FIELD_DOCS for cls in schema_class.__mro__)
                if not documented:
                    undocumented.append(f"{schema_class.__name__}.{name}")
    assert undocumented == []


def test_field_docs_name_real_fields():
    for schema_class, name in FIELD_DOCS:
        assert issubclass(schema_class, Schema)
        assert name in schema_class().fields, f"{schema_class.__name__}.{name}"


CREATE_THREAD_SAMPLES = [
    {"mode": "free"},
    {"mode": "free", "title": "hi", "settings": {"temperature": 0.5}},
    {"mode": "free", "keyId": None},
    {"mode": "free", "provider": "groq"},
    {"mode": "free", "model": "some-model"},
    {"mode": "free", "keyId": "k1"},
    {"mode": "byok"},
    {"mode": "byok", "provider": "openai"},
    {"mode": "byok", "model": "gpt-4o"},
    {"mode": "byok", "provider": "openai", "model": "gpt-4o"},
    {"mode": "byok", "provider": "openai", "model": "gpt-4o", "keyId": None},
    {"mode": "byok", "provider": "openai", "model": "gpt-4o", "keyId": "k1"},
    {"mode": "byok", "provider": "nope", "model": "gpt-4o"},
    {"mode": "other"},
    {"mode": "free", "extra": 1},
    {"mode": "free", "settings": {"maxTokens": 1.5}},
    {"mode": "free", "settings": {"maxTokens": 10, "topP": 1}},
    {"mode": "free", "settings": None},
    {"mode": "free", "settings": {"maxTokens": 200.0}},
    {"mode": "free", "settings": {"maxTokens": "3"}},
    {"mode": "free", "settings": {"maxTokens": True}},
    {"mode": "free", "settings": {"temperature": "0.5"}},
    {"mode": "free", "settings": {"topP": "1"}},
    {"mode": "free", "settings": {"temperature": 2, "topP": 0}},
    {"mode": "free", "settings": {"temperature": 2.5}},
    {"mode": "free", "title": "a\x00b"},
]


@pytest.mark.parametrize("payload", CREATE_THREAD_SAMPLES, ids=lambda p: json.dumps(p, sort_keys=True))
def test_create_thread_rules_agree_with_the_service_schema(spec, payload):
    """The document accepts exactly what chat_service takes (`load_json(CreateThreadSchema())`): the
    mode rules (`allOf`), JSON numbers in settings, no NUL in strings."""
    with Flask(__name__).test_request_context(method="POST", json=payload):
        try:
            load_json(CreateThreadSchema())
            service_accepts = True
        except (ValidationError, InvalidJSON):
            service_accepts = False
    document = {"$ref": "#/components/schemas/CreateThreadRequest", "components": spec["components"]}
    spec_accepts = Draft202012Validator(document).is_valid(payload)
    assert spec_accepts == service_accepts
