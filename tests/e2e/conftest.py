"""The real suite: five gunicorn processes (plus the provider simulator) on free ports.

`suite` runs on SQLite with in-memory limits and on Postgres + Redis; tests that use it run twice.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from runner.suite import Suite, free_port, simulator_base_urls, start_suite
from tests.conftest import BACKENDS, base_env, unique_email

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def launch_suite(tmp_path_factory, request, backend: str, name: str, **overrides: str) -> Suite:
    """Start a suite on `backend` with extra env overrides; stopped at the end of the session."""
    var_dir = tmp_path_factory.mktemp(f"{name}-{backend}")
    ports = {n: free_port() for n in ("auth", "keys", "chat", "quota", "gateway", "simulator")}
    gateway_url = f"http://127.0.0.1:{ports['gateway']}"
    env = base_env(var_dir, APP_BASE_URL=gateway_url, **overrides)
    env.update({k: v for k, v in simulator_base_urls(f"http://127.0.0.1:{ports['simulator']}").items()})
    if backend == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("new_postgres_database")()
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    env["PATH"] = os.environ.get("PATH", "")
    suite = start_suite(env, var_dir / "log", ports=ports)
    request.addfinalizer(suite.stop_all)
    return suite


@pytest.fixture(scope="session", params=BACKENDS)
def suite(request, tmp_path_factory) -> Suite:
    return launch_suite(tmp_path_factory, request, request.param, "suite")


class Browserless:
    """A requests session that behaves like our web page: same Origin, the session cookie kept."""

    def __init__(self, suite: Suite):
        self.suite = suite
        self.base = suite.url("gateway")
        self.http = requests.Session()
        self.http.headers["Origin"] = self.base

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.request(method, self.base + path, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def register(self, email: str | None = None, password: str = "correct horse battery") -> dict:
        email = email or unique_email()
        response = self.post("/api/auth/register", json={"email": email, "password": password})
        assert response.status_code == 201, response.text
        return {"email": email, "password": password, **response.json()["user"]}


@pytest.fixture
def client(suite) -> Browserless:
    return Browserless(suite)


@pytest.fixture
def signed_in(client) -> Browserless:
    client.register()
    return client
