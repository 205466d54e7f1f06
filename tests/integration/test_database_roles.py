"""One Postgres role per schema (deploy/postgres/roles.sql): a service's role reads and writes its own
schema and nothing else; migrations run as the owner, and the roles' rights cover their new tables."""

from __future__ import annotations

import re
import uuid

import flask_migrate
import psycopg2
import pytest
import sqlalchemy as sa

from keys_service.app import create_app as create_keys_app
from runner.suite import APPS
from shared.db import db
from tests.conftest import POSTGRES_ADMIN_URL, REPO_ROOT, make_settings

ROLES_SQL = REPO_ROOT / "deploy" / "postgres" / "roles.sql"
SCHEMAS = ("auth", "keys", "chat", "quota")
READABLE = {
    "auth": "auth.users",
    "keys": "keys.provider_keys",
    "chat": "chat.threads",
    "quota": "quota.global_daily_free_usage",
}


@pytest.fixture
def roles_database(postgres_admin, tmp_path):
    """A fresh database with the roles of roles.sql (names made unique for this run), then migrated
    by the owner; yields (database URL, {schema: role})."""
    suffix = uuid.uuid4().hex[:8]
    name = f"keylm_test_roles_{suffix}"
    roles = {schema: f"keylm_{schema}_{suffix}" for schema in SCHEMAS}
    sql = re.sub(r"\bkeylm_(auth|keys|chat|quota)\b", lambda m: roles[m.group(1)], ROLES_SQL.read_text())
    sql = re.sub(r":'(\w+)_password'", lambda m: "'pw-" + m.group(1) + "'", sql)
    with postgres_admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg2.connect(url) as owner, owner.cursor() as cursor:
            cursor.execute(sql)
        owner.close()
        for service in SCHEMAS:
            module = __import__(APPS[service].split(":")[0], fromlist=["create_app"])
            app = module.create_app(make_settings(tmp_path / "var", DATABASE_URL=url))
            with app.app_context():
                flask_migrate.upgrade()
        yield url, roles
    finally:
        with postgres_admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in roles.values():
                cursor.execute(f'DROP ROLE IF EXISTS "{role}"')


def as_role(url: str, role: str) -> str:
    return url.replace("postgres@", f"{role}:pw@", 1)


@pytest.mark.parametrize("service", SCHEMAS)
def test_a_services_role_uses_its_own_schema_and_cannot_read_another(roles_database, service):
    url, roles = roles_database
    connection = psycopg2.connect(as_role(url, roles[service]))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {READABLE[service]}")
            assert cursor.fetchone() == (0,)
            for other in SCHEMAS:
                if other == service:
                    continue
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cursor.execute(f"SELECT count(*) FROM {READABLE[other]}")
            # Using its tables, not shaping them: DDL belongs to the owner's migrations.
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute(f"CREATE TABLE {service}.planted (id int)")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("CREATE TABLE public.planted (id int)")
    finally:
        connection.close()


def test_keys_service_runs_as_its_role_when_keys_database_url_is_set(roles_database, tmp_path):
    url, roles = roles_database
    settings = make_settings(
        tmp_path / "var", DATABASE_URL=url, KEYS_DATABASE_URL=as_role(url, roles["keys"])
    )
    app = create_keys_app(settings)
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT current_user")) == roles["keys"]
        assert db.session.scalar(sa.text("SELECT count(*) FROM keys.audit_logs")) == 0
        with pytest.raises(sa.exc.ProgrammingError):
            db.session.execute(sa.text("SELECT count(*) FROM auth.users"))
        db.session.rollback()
