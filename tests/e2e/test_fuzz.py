"""Fuzz the whole public API against its own OpenAPI document (schemathesis, in process).

A dedicated suite per backend (SQLite; Postgres + Redis) with high rate limits and free quota runs
as real processes. Each operation of `GET /api/openapi.json` is fuzzed (schemathesis phases
examples, coverage and fuzzing; seeded, bounded) with a signed-in session cookie and our own
`Origin`, and every response must pass every schemathesis check: no 5xx, documented status codes,
content types, headers and bodies (each SSE event against its documented schema too), invalid input
rejected, valid input accepted, auth enforced, 405 + `Allow` for undocumented methods.

Valid-by-schema input that the API rejects for a reason no schema can state (an unknown reset token,
a key the provider refuses, a cursor it never issued, ...) is accepted only for the exact
operation, status and error code listed in SEMANTIC_REJECTIONS.

Half of the generated cases (chosen by a hash of the case, so a replay makes the same choice) have
their ids swapped for real ones (this user's key and threads), so the fuzzer gets past 404 into
the real work: key validation, model lists, renames, deletes and message streams.
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from marshmallow import ValidationError, validate
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation

from tests.conftest import BACKENDS, REPO_ROOT, unique_email
from tests.e2e.conftest import launch_suite

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX_EXAMPLES = 50
SEED = 1
HIGH_LIMITS = {
    "RATE_LIMIT_PER_MINUTE": "1000000",
    "LOGIN_LIMIT_PER_IP_PER_MINUTE": "1000000",
    "LOGIN_LIMIT_PER_EMAIL_PER_MINUTE": "1000000",
    "REGISTER_LIMIT_PER_IP_PER_MINUTE": "1000000",
    "FREE_USER_DAILY_LIMIT": "1000000",
    "FREE_GLOBAL_DAILY_LIMIT": "1000000",
}
PROVIDER = "openai"
MODEL = "gpt-4o-mini"
PASSWORD = "correct horse battery staple"


def _only_fields(*names: str) -> Callable[[Any, dict], bool]:
    """A `validation_error` that names only these fields."""

    def matches(case, error: dict) -> bool:
        named = set((error.get("details") or {}).get("fields", {}))
        return bool(named) and named <= set(names)

    return matches


def _refused_by_the_email_rule(case, error: dict) -> bool:
    """The register email rule (marshmallow's Email, see the spec) is stricter than JSON Schema's
    `email` format: a rejection is right exactly when that rule refuses the address sent."""
    email = case.body.get("email") if isinstance(case.body, dict) else None
    try:
        validate.Email()(email)
    except ValidationError:
        return _only_fields("email")(case, error)
    return False


def _anything(case, error: dict) -> bool:
    return True


def _body_text(case, name: str) -> str:
    value = case.body.get(name) if isinstance(case.body, dict) else None
    return value.strip() if isinstance(value, str) else ""


def _simulator_refuses_the_key(case, error: dict) -> bool:
    """The provider simulator answers "bad key" for a key containing `invalid` (simulator/README.md)."""
    return "invalid" in _body_text(case, "apiKey")


def _label_holds_the_key(case, error: dict) -> bool:
    key = _body_text(case, "apiKey")
    return bool(key) and key in _body_text(case, "label") and _only_fields("label")(case, error)


# (operation, status) -> error code -> when that answer to schema-valid input is right anyway.
SEMANTIC_REJECTIONS: dict[tuple[str, int], dict[str, Callable[[Any, dict], bool]]] = {
    # The documented email rule is stricter than the `email` format.
    ("POST /api/auth/register", 400): {"validation_error": _refused_by_the_email_rule},
    # A token is only valid if we mailed it.
    ("POST /api/auth/password-reset/confirm", 400): {"invalid_token": _anything},
    ("POST /api/auth/email-verification/confirm", 400): {"invalid_token": _anything},
    # The provider decides whether a key is good; a label must not contain the key itself.
    ("POST /api/providers/{provider}/keys", 400): {
        "key_invalid": _simulator_refuses_the_key,
        "validation_error": _label_holds_the_key,
    },
    # byok: the key must be active and the model in its catalog.
    # KeyLM Free bounds the system prompt (FREE_MAX_SYSTEM_PROMPT_CHARS) and each message
    # (FREE_MAX_MESSAGE_CHARS) below the general limits the schema states.
    ("POST /api/threads", 400): {"validation_error": _only_fields("keyId", "model", "systemPrompt")},
    ("POST /api/threads/{threadId}/messages", 400): {"validation_error": _only_fields("content")},
    # A cursor is only valid if we issued it.
    ("GET /api/threads", 400): {"validation_error": _only_fields("cursor")},
}


@dataclass
class World:
    """One signed-in user with a key and two threads; the fuzzer's real ids come from here."""

    base: str
    email: str = field(default_factory=lambda: unique_email("fuzz"))
    token: str = ""
    key_id: str = ""
    byok_thread: str = ""
    free_thread: str = ""

    def __post_init__(self):
        self.http = requests.Session()
        self.http.headers["Origin"] = self.base

    def call(self, method: str, path: str, expected: int, **kwargs) -> requests.Response:
        response = self.http.request(method, self.base + path, timeout=60, **kwargs)
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def setup(self) -> World:
        self.call("POST", "/api/auth/register", 201, json={"email": self.email, "password": PASSWORD})
        self.token = self.http.cookies["keylm_session"]
        self.new_key()
        self.free_thread = self.call("POST", "/api/threads", 201, json={"mode": "free"}).json()["thread"][
            "id"
        ]
        return self

    def login(self) -> None:
        self.http.cookies.clear()
        self.call("POST", "/api/auth/login", 200, json={"email": self.email, "password": PASSWORD})
        self.token = self.http.cookies["keylm_session"]

    def new_key(self) -> None:
        body = {"apiKey": f"sk-fuzz{uuid.uuid4().hex}", "label": "fuzz"}
        self.key_id = self.call("POST", f"/api/providers/{PROVIDER}/keys", 201, json=body).json()["key"]["id"]
        self.new_byok_thread()

    def new_byok_thread(self) -> None:
        body = {"mode": "byok", "provider": PROVIDER, "model": MODEL, "keyId": self.key_id}
        self.byok_thread = self.call("POST", "/api/threads", 201, json=body).json()["thread"]["id"]

    def key_is_active(self) -> bool:
        keys = self.call("GET", f"/api/providers/{PROVIDER}/keys", 200).json()["keys"]
        return any(k["id"] == self.key_id and k["status"] == "active" for k in keys)

    def thread_exists(self, thread_id: str) -> bool:
        return self.http.get(f"{self.base}/api/threads/{thread_id}", timeout=30).status_code == 200

    def repair(self) -> None:
        """After a case that may have ended the session or removed one of our resources."""
        if self.http.get(f"{self.base}/api/auth/me", timeout=30).status_code == 401:
            self.login()
        if not self.key_is_active():
            self.new_key()
        if not self.thread_exists(self.byok_thread):
            self.new_byok_thread()
        if not self.thread_exists(self.free_thread):
            self.free_thread = self.call("POST", "/api/threads", 201, json={"mode": "free"}).json()["thread"][
                "id"
            ]


# --- the schema and its session ---------------------------------------------------------------
# Loaded from the committed docs/openapi.json, the file the gateway serves (tests/e2e/test_openapi.py
# checks the served document is this one), so each operation is its own test item.
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        # The session cookie comes from SessionCookie, never from the generator: invalid input goes
        # into paths, queries and bodies; ignored_auth checks without and with a bad cookie.
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "with-security-parameters": False},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
        },
        "request-timeout": 60,
    }
)
schema = schemathesis.openapi.from_path(REPO_ROOT / "docs" / "openapi.json", config=CONFIG)
CURRENT: dict[str, World] = {}


@schema.auth(refresh_interval=None)
class SessionCookie:
    """The fuzz user's current session (a fuzzed logout ends it; World.repair signs in again)."""

    def get(self, case, context):
        world = CURRENT.get("world")
        return world.token if world else None  # None while pytest collects

    def set(self, case, data, context):
        case.cookies = {**(case.cookies or {}), "keylm_session": data}


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_world(request, tmp_path_factory) -> World:
    suite = launch_suite(tmp_path_factory, request, request.param, "fuzz", **HIGH_LIMITS)
    CURRENT["world"] = World(suite.url("gateway")).setup()
    return CURRENT["world"]


# --- real ids for half the cases --------------------------------------------------------------
def _choice(case) -> int:
    """A stable number per generated case (the same on a replay while shrinking)."""
    raw = repr((case.operation.label, case.path_parameters, case.query, case.body))
    return zlib.crc32(raw.encode("utf-8", "surrogatepass"))


def _negative_at(case, location: ParameterLocation) -> bool:
    return case.meta is not None and case.meta.is_negative_at(location)


def pin_real_ids(case, world: World) -> None:
    choice = _choice(case)
    if choice % 2:
        return
    thread = world.byok_thread if (choice >> 1) % 2 else world.free_thread
    path = case.path_parameters or {}
    if path and not _negative_at(case, ParameterLocation.PATH):
        if "threadId" in path:
            path["threadId"] = thread
        if "keyId" in path:
            path["keyId"] = world.key_id
        if "provider" in path:
            path["provider"] = PROVIDER
    query = case.query or {}
    if "keyId" in query and not _negative_at(case, ParameterLocation.QUERY):
        query["keyId"] = world.key_id
    body = case.body
    if isinstance(body, dict) and not _negative_at(case, ParameterLocation.BODY):
        if case.operation.label == "POST /api/threads" and body.get("mode") == "byok":
            body.update(provider=PROVIDER, model=MODEL, keyId=world.key_id)
        elif isinstance(body.get("keyId"), str):
            body["keyId"] = world.key_id


# --- checks of our own ------------------------------------------------------------------------
def _error_of(response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body.get("error", {}) if isinstance(body, dict) else {}


def semantic_positive_data_acceptance(ctx, response, case):
    """schemathesis' positive_data_acceptance, except the rejections listed in SEMANTIC_REJECTIONS."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    allowed = SEMANTIC_REJECTIONS.get((case.operation.label, response.status_code), {})
    error = _error_of(response)
    rule = allowed.get(error.get("code"))
    if rule is not None and rule(case, error):
        return None
    return positive_data_acceptance(ctx, response, case)


def message_stream_order(ctx, response, case):
    """The stream of docs/api.md: message.created, delta*, usage?, then exactly one of done/error."""
    content_type = ",".join(response.headers.get("content-type", []))
    if response.status_code != 200 or not content_type.startswith("text/event-stream"):
        return None
    names = [
        line.split(":", 1)[1].strip()
        for line in re.split(r"\r\n|\r|\n", response.content.decode("utf-8"))
        if line.startswith("event:")
    ]
    assert names, "an empty message stream"
    assert names[0] == "message.created", names
    assert names[-1] in ("done", "error"), names
    middle = names[1:-1]
    assert set(middle) <= {"delta", "usage"}, names
    assert middle.count("usage") <= 1 and (not middle or "usage" not in middle[:-1]), names
    return None


OWN_CHECKS: list[Callable] = [semantic_positive_data_acceptance, message_stream_order]


@schema.parametrize()
@hypothesis.settings(deadline=None)
def test_api_conforms_to_its_openapi_document(case, fuzz_world):
    # The coverage phase builds its cases while pytest collects, before there is a session: sign
    # every case in here (the fuzzing phase signs its own when it draws them).
    schema.auth.set(case, schemathesis.AuthContext(operation=case.operation, app=None))
    pin_real_ids(case, fuzz_world)
    headers = {"Origin": fuzz_world.base}
    response = case.call(base_url=fuzz_world.base, headers=headers, timeout=60)
    try:
        case.validate_response(
            response,
            headers=headers,
            excluded_checks=[positive_data_acceptance],
            additional_checks=OWN_CHECKS,
            transport_kwargs={"base_url": fuzz_world.base, "headers": headers, "timeout": 60},
        )
    finally:
        if response.status_code == 204:  # a logout, a revoked key or a deleted thread
            fuzz_world.repair()
