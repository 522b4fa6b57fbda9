"""The kit's outbox, inbox and dead-letter tables.

Revision ID: sharing_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from wangban.migrations import create_kit_tables

revision: str = "sharing_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_tables(op, "sharing")


def downgrade() -> None:
    for table in ("dead_letter", "inbox", "outbox"):
        op.drop_table(table, schema="sharing")
