"""The human on whose behalf each lookup ran (actor subject, department, role).

Revision ID: sharing_0003
Revises: sharing_0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sharing_0003"
down_revision: str | None = "sharing_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: records written before this revision name no actor, and a NULL column is
    # left out of a record's MAC, so their chain still verifies.
    op.add_column(
        "lookup_audit",
        sa.Column("actor_subject", sa.String(length=128), nullable=True),
        schema="sharing",
    )
    op.add_column(
        "lookup_audit",
        sa.Column("actor_department", sa.String(length=100), nullable=True),
        schema="sharing",
    )
    op.add_column(
        "lookup_audit",
        sa.Column("actor_role", sa.String(length=32), nullable=True),
        schema="sharing",
    )


def downgrade() -> None:
    for column in ("actor_role", "actor_department", "actor_subject"):
        op.drop_column("lookup_audit", column, schema="sharing")
