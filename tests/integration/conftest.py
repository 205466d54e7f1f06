"""In-process service apps on a real database (SQLite and Postgres), called with real credentials."""

from __future__ import annotations

import json
from collections.abc import Callable

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.internal_auth import HEADER, InternalCredentials
from tests.conftest import BACKENDS, make_settings


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings_for(backend, tmp_path, request):
    """Settings on the chosen backend; Postgres gets a throwaway database."""

    def build(**overrides: str):
        if backend == "postgres":
            overrides.setdefault("DATABASE_URL", request.getfixturevalue("new_postgres_database")())
        return make_settings(tmp_path / "var", **overrides)

    return build


def migrated_app(create_app: Callable[..., Flask], settings) -> Flask:
    app = create_app(settings)
    app.config["TESTING"] = True
    with app.app_context():
        flask_migrate.upgrade()
    return app


class ServiceCaller:
    """A test client that signs each request as `caller`, acting for `user_id`."""

    def __init__(self, app: Flask, audience: str):
        self.client: FlaskClient = app.test_client()
        self.settings = app.extensions["keylm.settings"]
        self.audience = audience

    def credential(
        self, method: str, path: str, body: bytes = b"", *, caller="gateway", user_id=None, session_id=None
    ) -> str:
        """A fresh credential signed with `caller`'s own key for exactly this request."""
        signer = InternalCredentials(caller, self.settings.private_key(caller))
        return signer.issue(self.audience, method, path, body, user_id, session_id)

    def open(self, method: str, path: str, *, user_id=None, session_id=None, caller="gateway", **kw):
        headers = dict(kw.pop("headers", {}) or {})
        if "json" in kw:  # signed as the exact bytes sent
            kw["data"] = json.dumps(kw.pop("json")).encode()
            kw.setdefault("content_type", "application/json")
        body = kw.get("data") or b""
        body = body.encode() if isinstance(body, str) else body
        headers[HEADER] = self.credential(
            method, path, body, caller=caller, user_id=user_id, session_id=session_id
        )
        return self.client.open(path, method=method, headers=headers, **kw)

    def get(self, path, **kw):
        return self.open("GET", path, **kw)

    def post(self, path, **kw):
        return self.open("POST", path, **kw)

    def patch(self, path, **kw):
        return self.open("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.open("DELETE", path, **kw)
