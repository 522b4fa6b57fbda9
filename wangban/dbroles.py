"""One PostgreSQL role per service: what ``wangban db roles`` applies (Trust finding 4).

Every service owns one schema and must reach no other. With one shared login that is only a
convention; with these roles the database enforces it:

* ``wangban_<service>_owner`` (NOLOGIN) owns the service's schema and everything in it.
  Migrations run as it (:func:`wangban.migrations.upgrade` switches to it when the migrating
  login is a member), so tables a later revision creates belong to it too.
* ``wangban_<service>`` (LOGIN) is what the service runs as: USAGE on its own schema and
  read/write on its tables and sequences — no ownership (so no ALTER, no DISABLE TRIGGER, no
  DROP) and nothing at all on the other services' schemas.
* the sharing service's audit log is append-only by privilege as well as by trigger: its
  runtime role may INSERT and SELECT ``sharing.lookup_audit`` but not UPDATE, DELETE or
  TRUNCATE it. Only the owner could, and nobody logs in as the owner.

The statements are idempotent (roles created when missing, ownership and grants re-applied),
so the migrate job runs ``wangban db roles`` after every ``wangban migrate``. The login running
it needs CREATEROLE and ownership of (or membership in the owners of) the schemas: the
migrator, or a superuser. Passwords are not set here: ``WANGBAN_DB_PASSWORD_<SERVICE>`` in the
environment, if present, sets that role's password; otherwise set them out of band (or use
certificate / IAM authentication).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from sqlalchemy import text

from wangban.db import Database, checked_schema

APPEND_ONLY_TABLES: Final[Mapping[str, tuple[str, ...]]] = {"sharing": ("lookup_audit",)}
"""Tables each service's runtime role may only INSERT into and SELECT from."""


def owner_role(schema: str) -> str:
    return f"wangban_{checked_schema(schema)}_owner"


def password_variable(schema: str) -> str:
    """The environment variable ``wangban db roles`` reads a login's password from (not a
    Settings field: only the roles step needs it, from the service's own Secret)."""
    return f"WANGBAN_DB_PASSWORD_{schema.upper()}"


def runtime_role(schema: str) -> str:
    return f"wangban_{checked_schema(schema)}"


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def role_statements(
    schemas: Sequence[str], *, passwords: Mapping[str, str] | None = None
) -> list[str]:
    """The SQL, one statement per item, for the services' ``schemas``."""
    passwords = passwords or {}
    statements: list[str] = []
    for schema in schemas:
        owner, runtime = owner_role(schema), runtime_role(schema)
        statements += [
            f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') THEN
    CREATE ROLE {owner} NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{runtime}') THEN
    CREATE ROLE {runtime} LOGIN;
  END IF;
END $$""",  # noqa: S608 - names built from checked_schema
            # The migrating login may act as the owner (SET ROLE in wangban migrate).
            f"GRANT {owner} TO CURRENT_USER",
            f"CREATE SCHEMA IF NOT EXISTS {schema}",
            f"ALTER SCHEMA {schema} OWNER TO {owner}",
            # Tables, views and free-standing sequences (a column's sequence follows its
            # table), and functions (the audit trigger's) go to the owner.
            f"""DO $$ DECLARE r record; BEGIN
  FOR r IN
    SELECT c.relname, c.relkind FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND NOT (c.relkind = 'S' AND EXISTS (
        SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
  LOOP
    EXECUTE format('ALTER %s {schema}.%I OWNER TO {owner}',
      CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                     WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, r.relname);
  END LOOP;
  FOR r IN
    SELECT p.oid::regprocedure AS signature FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '{schema}'
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO {owner}', r.signature);
  END LOOP;
END $$""",  # noqa: S608 - names built from checked_schema
            f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC",
            f"GRANT USAGE ON SCHEMA {schema} TO {runtime}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {runtime}",
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {runtime}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {runtime}",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema} "
            f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {runtime}",
        ]
        for table in APPEND_ONLY_TABLES.get(schema, ()):
            statements.append(f"REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.{table} FROM {runtime}")
        password = passwords.get(schema)
        if password:
            statements.append(f"ALTER ROLE {runtime} PASSWORD {_quote_literal(password)}")
    return statements


async def apply_roles(
    database: Database, schemas: Sequence[str], *, passwords: Mapping[str, str] | None = None
) -> None:
    """Apply :func:`role_statements` in one transaction, under the migrators' lock per schema
    (so it never interleaves with a running ``wangban migrate``)."""
    async with database.engine.begin() as conn:
        for schema in schemas:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
        for statement in role_statements(schemas, passwords=passwords):
            await conn.execute(text(statement))
