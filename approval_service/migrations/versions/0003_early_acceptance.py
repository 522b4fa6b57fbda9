"""Acceptances that arrived before their submission, kept until the case opens.

Revision ID: approval_0003
Revises: approval_0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "approval_0003"
down_revision: str | None = "approval_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "early_acceptance",
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("application_id"),
        schema="approval",
    )


def downgrade() -> None:
    op.drop_table("early_acceptance", schema="approval")
