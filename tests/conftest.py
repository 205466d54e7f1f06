"""Fixtures shared by every test: environments, the real Postgres and Redis, throwaway databases.

Postgres and Redis tests skip when the server is unreachable on a developer machine, but fail in
CI (CI=true), where .ci/run has started both.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.config import SERVICE_NAMES, Settings, load_settings
from shared.signing import new_private_key

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "KEYLM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("KEYLM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ("sqlite", "postgres")


def unavailable(reason: str) -> None:
    """Skip on a developer machine, fail in CI: a real-server test must not silently vanish."""
    if IN_CI:
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


def base_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """A complete, valid environment for services under test (fresh secrets each time)."""
    env = {
        "APP_AUTH_SECRET": secrets.token_hex(32),
        # Each service's Ed25519 key (its public half is derived: one env for the whole suite).
        **{f"{name.upper()}_SIGNING_KEY": new_private_key() for name in SERVICE_NAMES},
        "PASSWORD_PEPPER": secrets.token_hex(32),
        "APP_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "KEYLM_VAR_DIR": str(var_dir),
        "KEYLM_ENV_FILE": "none",
        "BCRYPT_ROUNDS": "4",
        "LOG_LEVEL": "INFO",
        "GROQ_API_KEY": "gsk_test_free_pool_" + secrets.token_hex(12),
        "GROQ_FREE_MODEL": "moonshotai/kimi-k2-instruct-0905",
        "GROQ_FREE_FALLBACK_MODELS": "openai/gpt-oss-120b,llama-3.1-8b-instant",
        "RATE_LIMIT_PER_MINUTE": "1000",
        "LOGIN_LIMIT_PER_IP_PER_MINUTE": "1000",
        "LOGIN_LIMIT_PER_EMAIL_PER_MINUTE": "5",
        "REGISTER_LIMIT_PER_IP_PER_MINUTE": "1000",
        # A stopped service ends its open streams after this long (then gunicorn's grace, 2 s more).
        "DRAIN_SECONDS": "1",
        # Every test speaks from 127.0.0.1: the limits of issue 10 are tested with their own suites.
        "KEY_CHECK_LIMIT_PER_MINUTE": "1000",
        "MODEL_REFRESH_LIMIT_PER_MINUTE": "1000",
        "THREAD_CREATE_LIMIT_PER_MINUTE": "1000",
        # Runs that share one Redis (parallel checkouts, CI beside a developer) count apart.
        "RATE_LIMIT_KEY_PREFIX": "keylm-test-" + secrets.token_hex(6),
    }
    env.update(overrides)
    return env


def make_settings(var_dir: Path, **overrides: str) -> Settings:
    return load_settings(base_env(var_dir, **overrides))


@pytest.fixture(scope="session")
def postgres_admin():
    import psycopg2

    try:
        connection = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        unavailable(f"Postgres unreachable at {POSTGRES_ADMIN_URL}: {exc}")
    connection.autocommit = True
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def new_postgres_database(postgres_admin):
    """A factory of throwaway databases (`keylm_test_<random>`), dropped at the end of the run."""
    created: list[str] = []

    def create() -> str:
        name = f"keylm_test_{uuid.uuid4().hex[:12]}"
        with postgres_admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    yield create
    with postgres_admin.cursor() as cursor:
        for name in created:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis unreachable at {REDIS_URL}: {exc}")
    yield REDIS_URL


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"
