"""Security tests against the real processes: one suite per backend per module, and the tools to
look inside it (every database row, every log line, every response a client received).

Each module gets its own `sec_suite` (module scope, parametrized over SQLite+memory limits and
Postgres+Redis), so a module's checks of logs and rows see that module's traffic and nothing else.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests

from runner.suite import Suite
from shared.config import load_settings
from shared.internal_auth import HEADER as CREDENTIAL_HEADER
from shared.internal_auth import InternalCredentials
from shared.providers.registry import SPECS
from shared.signing import parse_private_key
from shared.tokens import session_codec
from tests.conftest import BACKENDS
from tests.e2e.conftest import Browserless, launch_suite
from tests.e2e.sse import BYOK_MODELS, Simulator

SCHEMAS = ("auth", "keys", "chat", "quota")
SERVICES = ("auth", "keys", "chat", "quota")
PROCESSES = ("simulator", "auth", "keys", "chat", "quota", "gateway")
# Realistic shapes, so a leak that a shape-based redactor would hide and one it would not both show.
KEY_PREFIX = {spec.id: spec.test_key_prefix for spec in SPECS.values()}


@pytest.fixture(scope="module", params=BACKENDS)
def sec_suite(request, tmp_path_factory) -> Suite:
    """This module's own suite on one backend; stopped when the module is done."""
    name = "sec-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    suite = launch_suite(tmp_path_factory, request, request.param, name)
    suite.backend = request.param  # type: ignore[attr-defined]
    return suite


@pytest.fixture(scope="module")
def sim(sec_suite) -> Simulator:
    return Simulator(sec_suite.url("simulator"))


# --- clients ---------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    url: str
    status: int
    headers: str
    body: str


class RecordingClient(Browserless):
    """The web page's client, remembering every response (status, headers, whole body).

    Responses are always read in full (a `stream=True` request is sent without it), so the body of
    a message stream is recorded too; `tests.e2e.sse.read_events` still parses it.
    """

    def __init__(self, suite: Suite, journal: list[Recorded] | None = None):
        super().__init__(suite)
        self.journal: list[Recorded] = journal if journal is not None else []
        self.user: dict = {}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.pop("stream", None)
        response = super().request(method, path, **kwargs)
        self.journal.append(
            Recorded(
                method,
                response.url,
                response.status_code,
                "\n".join(f"{k}: {v}" for k, v in response.headers.items()),
                response.content.decode("utf-8", errors="replace"),
            )
        )
        return response

    def register(self, email: str | None = None, password: str = "correct horse battery") -> dict:
        self.user = super().register(email, password)
        return self.user

    @property
    def session_cookie(self) -> str:
        return self.http.cookies.get("keylm_session", "")


def signed_in_client(suite: Suite, journal: list[Recorded] | None = None, **register) -> RecordingClient:
    client = RecordingClient(suite, journal)
    client.register(**register)
    return client


def suite_settings(suite: Suite):
    """The suite's own configuration (its keys among it), as every service of it loads it."""
    return load_settings(suite.env)


def session_claims(suite: Suite, client: RecordingClient) -> dict:
    """The user id (`uid`) and session id (`sid`) inside the client's session cookie."""
    return session_codec(suite_settings(suite)).decode(client.session_cookie)


# --- provider keys ---------------------------------------------------------------------------


def new_api_key(provider: str, tag: str = "") -> str:
    return KEY_PREFIX[provider] + tag + secrets.token_hex(20)


def add_key(client: Browserless, provider: str, api_key: str | None = None, label: str = "sec") -> dict:
    api_key = api_key or new_api_key(provider)
    response = client.post(f"/api/providers/{provider}/keys", json={"apiKey": api_key, "label": label})
    assert response.status_code == 201, response.text
    return {**response.json()["key"], "apiKey": api_key}


def list_keys(client: Browserless, provider: str) -> list[dict]:
    response = client.get(f"/api/providers/{provider}/keys")
    assert response.status_code == 200, response.text
    return response.json()["keys"]


def byok_thread(client: Browserless, provider: str, key_id: str, **extra) -> dict:
    body = {"mode": "byok", "provider": provider, "model": BYOK_MODELS[provider], "keyId": key_id, **extra}
    response = client.post("/api/threads", json=body)
    assert response.status_code == 201, response.text
    return response.json()["thread"]


def free_thread(client: Browserless, **extra) -> dict:
    response = client.post("/api/threads", json={"mode": "free", **extra})
    assert response.status_code == 201, response.text
    return response.json()["thread"]


def send_message(client: Browserless, thread_id: str, content: str, request_id: str | None = None):
    return client.post(
        f"/api/threads/{thread_id}/messages",
        json={"content": content, "clientRequestId": request_id or uuid.uuid4().hex},
        stream=True,
    )


# --- internal credentials --------------------------------------------------------------------


@dataclass(frozen=True)
class Unsigned:
    """A credential `direct()` signs for the very request it goes with (method, path and body are
    bound into it). `key` signs instead of the caller's own key; `clock` shifts its issue time;
    `bind` = (method, path, body) signs it for another request than the one sent."""

    suite: Suite
    caller: str
    audience: str
    user_id: str | None = None
    session_id: str | None = None
    key: str | None = None
    clock: float = 0.0
    bind: tuple[str, str, bytes] | None = None

    def sign(self, method: str, path: str, body: bytes) -> str:
        private = (
            parse_private_key(self.key) if self.key else suite_settings(self.suite).private_key(self.caller)
        )
        issuer = InternalCredentials(self.caller, private, clock=lambda: time.time() + self.clock)
        method, path, body = self.bind or (method, path, body)
        return issuer.issue(self.audience, method, path, body, self.user_id, self.session_id)


def credential_headers(
    suite: Suite, caller: str, audience: str, user_id: str | None = None, session_id: str | None = None, **how
) -> dict[str, Unsigned]:
    """The credential header of `caller` (signed with its own key) for a `direct()` request."""
    return {CREDENTIAL_HEADER: Unsigned(suite, caller, audience, user_id, session_id, **how)}


def request_body(kwargs: dict) -> bytes:
    """The exact bytes `direct()` sends (a `json=` body is serialised here, so it can be signed)."""
    if kwargs.get("json") is not None:
        kwargs["data"] = json.dumps(kwargs.pop("json")).encode()
        kwargs.setdefault("headers", {})
        kwargs["headers"] = {"Content-Type": "application/json", **kwargs["headers"]}
    kwargs.pop("json", None)
    body = kwargs.get("data") or b""
    return body.encode() if isinstance(body, str) else body


def direct(suite: Suite, service: str, method: str, path: str, **kwargs) -> requests.Response:
    """A request straight to a service's port (not through the gateway); an `Unsigned` header value
    is signed for exactly this request."""
    kwargs.setdefault("timeout", 30)
    kwargs["headers"] = dict(kwargs.get("headers") or {})
    body = request_body(kwargs)
    for name, value in list(kwargs["headers"].items()):
        if isinstance(value, Unsigned):
            kwargs["headers"][name] = value.sign(method, path, body)
    return requests.request(method, suite.url(service) + path, **kwargs)


# --- what is stored, logged and mailed -------------------------------------------------------


def dump_database(suite: Suite, schemas: Iterable[str] = SCHEMAS) -> dict[str, list[dict]]:
    """Every row of every table of the given schemas: `{"schema.table": [{column: value}, ...]}`."""
    dump: dict[str, list[dict]] = {}
    if "DATABASE_URL" in suite.env:
        import psycopg2

        connection = psycopg2.connect(suite.env["DATABASE_URL"])
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT table_schema, table_name FROM information_schema.tables"
                    " WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE'",
                    (list(schemas),),
                )
                for schema, table in cursor.fetchall():
                    cursor.execute(f'SELECT * FROM "{schema}"."{table}"')
                    columns = [column.name for column in cursor.description]
                    dump[f"{schema}.{table}"] = [dict(zip(columns, row, strict=True)) for row in cursor]
        finally:
            connection.close()
    else:
        var_dir = Path(suite.env["KEYLM_VAR_DIR"])
        for schema in schemas:
            connection = sqlite3.connect(var_dir / f"{schema}.db")
            try:
                tables = [
                    row[0]
                    for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                ]
                for table in tables:
                    cursor = connection.execute(f'SELECT * FROM "{table}"')
                    columns = [column[0] for column in cursor.description]
                    dump[f"{schema}.{table}"] = [dict(zip(columns, row, strict=True)) for row in cursor]
            finally:
                connection.close()
    return dump


def cells(dump: dict[str, list[dict]]) -> list[tuple[str, str]]:
    """Every stored value as text, named `schema.table.column`."""
    return [
        (f"{table}.{column}", _as_text(value))
        for table, rows in dump.items()
        for row in rows
        for column, value in row.items()
    ]


def _as_text(value) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def key_row(suite: Suite, key_id: str) -> dict:
    """The keys schema's row for one key, read straight from the database."""
    for row in dump_database(suite, ["keys"])["keys.provider_keys"]:
        if row["id"] == key_id:
            return row
    raise AssertionError(f"no row for key {key_id}")


def read_logs(suite: Suite) -> dict[str, str]:
    """Each process's whole log (the five services and the simulator)."""
    return {name: suite.log_path(name).read_text(errors="replace") for name in PROCESSES}


def outbox_mail_to(suite: Suite, email: str, timeout: float = 5.0):
    """The newest mail written to the outbox for `email` (parsed)."""
    outbox = Path(suite.env["KEYLM_VAR_DIR"]) / "outbox"
    deadline = time.monotonic() + timeout
    while True:
        mails = []
        for path in sorted(outbox.glob("*.eml")) if outbox.exists() else []:
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if message["To"] == email:
                mails.append((path.stat().st_mtime_ns, path.name, message))
        if mails:
            return max(mails, key=lambda m: (m[0], m[1]))[2]
        if time.monotonic() > deadline:
            raise AssertionError(f"no mail to {email} in {outbox}")
        time.sleep(0.05)


def reset_token_from(message) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    for word in body.split():
        if "/reset?token=" in word:
            return unquote(word.split("token=", 1)[1])
    raise AssertionError(f"no reset link in {body!r}")


def encodings_of(secret: str) -> list[str]:
    """The secret and the forms it would take if someone "hid" it by encoding it."""
    raw = secret.encode()
    return [
        secret,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
    ]
