"""Alembic, once per service: each service has its own history in its own schema.

A service's ``migrations/env.py`` is two lines that hand its metadata to :func:`run_env`; the
version table lives in the service's schema, so histories never collide.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from wangban.db import Database, checked_schema

if TYPE_CHECKING:
    from wangban.app import ServiceSpec

VERSION_TABLE = "alembic_version"


def alembic_config(*, migrations_dir: Path, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["schema"] = checked_schema(schema)
    return config


def run_env(metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py`` (online mode, given a connection)."""
    schema = context.config.attributes["schema"]
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `wangban migrate`, which passes the connection")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def head_revision(*, migrations_dir: Path, schema: str) -> str | None:
    script = ScriptDirectory.from_config(
        alembic_config(migrations_dir=migrations_dir, schema=schema)
    )
    return script.get_current_head()


async def upgrade(database: Database, *, migrations_dir: Path, schema: str) -> None:
    """Create the schema if needed and upgrade it to head (idempotent)."""
    config = alembic_config(migrations_dir=migrations_dir, schema=schema)

    def _run(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{checked_schema(schema)}"'))
        # With per-service roles (`wangban db roles`), migrate as the schema's owner role, so
        # what a revision creates belongs to it and gets the runtime role's default grants.
        owner = f"wangban_{checked_schema(schema)}_owner"
        member = connection.execute(
            text(
                "SELECT 1 FROM pg_roles WHERE rolname = :owner "
                "AND pg_has_role(current_user, oid, 'MEMBER')"
            ),
            {"owner": owner},
        ).scalar()
        if member:
            connection.execute(text(f'SET LOCAL ROLE "{owner}"'))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with database.engine.begin() as conn:
        # Serialise concurrent migrators (several pods starting at once) on a per-schema lock.
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        await conn.run_sync(_run)


async def current_revision(database: Database, *, schema: str) -> str | None:
    def _read(connection: Connection) -> str | None:
        ctx = MigrationContext.configure(
            connection, opts={"version_table_schema": schema, "version_table": VERSION_TABLE}
        )
        return ctx.get_current_revision()

    async with database.engine.connect() as conn:
        return await conn.run_sync(_read)


async def upgrade_service(database: Database, spec: ServiceSpec) -> None:
    await upgrade(database, migrations_dir=spec.migrations_dir, schema=spec.schema)


def create_kit_tables(op: Any, schema: str) -> None:
    """Initial-migration helper: the outbox, inbox and dead-letter tables of one service.

    Builds them from :func:`wangban.outbox.define_kit_tables`, the single definition. That
    definition is therefore frozen as the kit's table version 1: a later change to those tables
    is a new helper called from a new revision in every service, never an edit here.
    """
    from wangban.outbox import define_kit_tables

    metadata = MetaData(schema=checked_schema(schema))
    define_kit_tables(metadata)
    metadata.create_all(bind=op.get_bind())
