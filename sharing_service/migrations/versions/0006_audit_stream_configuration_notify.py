"""``lookup.audited`` published by tailing the audit log, and the registry cached per process.

* ``audit_stream``: the last audit record published as ``lookup.audited`` (one row). The
  records up to the head at upgrade time were announced through the outbox by the code before
  this revision (rows still in the outbox are relayed as before), so the stream starts there.
* ``configuration_changed``: any change to the registry tables a process caches (providers,
  datasets, the access policy, certificate types, signing keys) notifies
  ``wangban_sharing_configuration`` at commit, whoever makes it (a replica, ``psql``), so every
  process drops its copy (:mod:`sharing_service.configuration`).

Revision ID: sharing_0006
Revises: sharing_0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sharing_0006"
down_revision: str | None = "sharing_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CACHED_TABLES = ("provider", "dataset", "access_grant", "certificate_type", "signing_key")


def upgrade() -> None:
    op.create_table(
        "audit_stream",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("published_seq", sa.BigInteger(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="sharing",
    )
    op.execute(
        "INSERT INTO sharing.audit_stream (id, published_seq, saved_at) "
        "SELECT 1, seq, now() FROM sharing.audit_head WHERE id = 1"
    )
    op.execute(
        """
        CREATE FUNCTION sharing.configuration_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('wangban_sharing_configuration', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    for table in CACHED_TABLES:
        op.execute(
            f"""
            CREATE TRIGGER {table}_changed
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sharing.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION sharing.configuration_changed()
            """
        )


def downgrade() -> None:
    for table in CACHED_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_changed ON sharing.{table}")
    op.execute("DROP FUNCTION IF EXISTS sharing.configuration_changed()")
    op.drop_table("audit_stream", schema="sharing")
