"""The Alembic environment every service's migration history runs in (see migrations/*/env.py).

Each service owns one schema and one history: only that schema's tables are compared, and the
version table lives inside the schema so histories never collide.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import context
from flask import current_app

logger = logging.getLogger("alembic.env")


def run_migrations() -> None:
    schema = current_app.config["KEYLM_SCHEMA"]
    db = current_app.extensions["migrate"].db

    def include_name(name, type_, parent_names):
        if type_ == "schema":
            return name == schema
        return parent_names.get("schema_name") in (schema, None) if type_ == "table" else True

    def include_object(obj, name, type_, reflected, compare_to):
        if type_ == "table":
            return obj.schema == schema
        return True

    options = {
        "target_metadata": db.metadata,
        "include_schemas": True,
        "include_name": include_name,
        "include_object": include_object,
        "version_table_schema": schema,
        "compare_type": True,
    }

    if context.is_offline_mode():
        context.configure(url=str(db.engine.url), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return

    with db.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # The version table lives in the schema, so the schema must exist before Alembic runs.
            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.commit()
        batch = connection.dialect.name == "sqlite"  # SQLite alters tables by copying them
        context.configure(connection=connection, render_as_batch=batch, **options)
        with context.begin_transaction():
            context.run_migrations()
