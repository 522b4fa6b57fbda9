"""Events about an application that arrived before its submission (``early_event``).

Revision ID: notify_0004
Revises: notify_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "notify_0004"
down_revision: str | None = "notify_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "early_event",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        schema="notify",
    )
    op.create_index(
        "ix_notify_early_event_application_id",
        "early_event",
        ["application_id"],
        schema="notify",
    )
    op.create_index(
        "ix_notify_early_event_arrived_at", "early_event", ["arrived_at"], schema="notify"
    )


def downgrade() -> None:
    op.drop_table("early_event", schema="notify")
