"""The database: one schema per service on Postgres; SQLite files attached by schema name otherwise."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from shared.config import REPO_ROOT, Settings

logger = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


# Objects stay readable after a commit instead of being reloaded on next access: services commit
# early (to release their connection before calling another service) and go on using what they
# read. Whoever needs fresh state after someone else's write reads it again explicitly.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()


def utcnow() -> datetime:
    """Now, as a naive UTC datetime (what both Postgres `timestamp` and SQLite store)."""
    return datetime.now(UTC).replace(tzinfo=None)


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z`, as docs/api.md says."""
    if moment is None:
        return None
    return moment.replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def init_database(app: Flask, settings: Settings, schema: str) -> None:
    """Bind `db` to this service's schema and register its migration history."""
    if settings.uses_sqlite:
        app.config["SQLALCHEMY_DATABASE_URI"] = _sqlite_url(settings.var_dir)
        # A busy writer makes others wait instead of failing at once.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    else:
        app.config["SQLALCHEMY_DATABASE_URI"] = _psycopg2_url(settings.database_url)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_pre_ping": True,  # survive a Postgres restart without a restart of ours
            # Per worker process; keep (services x workers x (size + overflow)) under max_connections.
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_recycle": 1800,
        }
    app.config["KEYLM_SCHEMA"] = schema
    db.init_app(app)
    if settings.uses_sqlite:
        with app.app_context():
            _attach_schema_on_connect(db.engine, settings.var_dir, schema)
    migrate.init_app(app, db, directory=str(REPO_ROOT / "migrations" / schema))


def _psycopg2_url(url: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; we ship psycopg2 (+ psycogreen).
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _sqlite_url(var_dir: Path) -> str:
    var_dir.mkdir(parents=True, exist_ok=True)
    # The main database stays empty; each service's tables live in its attached schema file.
    return f"sqlite:///{var_dir / 'keylm-main.db'}"


def _attach_schema_on_connect(engine: sa.Engine, var_dir: Path, schema: str) -> None:
    path = var_dir / f"{schema}.db"

    @sa.event.listens_for(engine, "connect")
    def attach(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"ATTACH DATABASE ? AS {schema}", (str(path),))
        cursor.execute(f"PRAGMA {schema}.journal_mode=WAL")
        # With WAL, NORMAL never corrupts; a power cut may lose the last commits. Skips an fsync
        # per commit, which the message stream makes several of.
        cursor.execute(f"PRAGMA {schema}.synchronous=NORMAL")
        # Deleted data (a revoked key's ciphertext) is overwritten, not left in free pages.
        cursor.execute(f"PRAGMA {schema}.secure_delete=ON")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def checkpoint_sqlite(schema: str) -> None:
    """SQLite only: copy the write-ahead log into the schema's file and truncate it to zero bytes,
    so a value just overwritten (a destroyed ciphertext) does not linger in `<schema>.db-wal` until
    the next automatic checkpoint. Postgres keeps its own WAL and backups (see the README)."""
    if db.engine.dialect.name != "sqlite":
        return
    busy, _, _ = db.session.execute(sa.text(f"PRAGMA {schema}.wal_checkpoint(TRUNCATE)")).one()
    db.session.commit()
    if busy:
        logger.warning("WAL checkpoint of %s was blocked by a reader; it completes later", schema)


def check_database() -> None:
    """Raise if the database cannot answer a trivial query (used by /healthz)."""
    db.session.execute(sa.text("SELECT 1"))
    db.session.rollback()
