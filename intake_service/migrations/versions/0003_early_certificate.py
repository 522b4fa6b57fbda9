"""Certificates that arrived before their application was completed

Revision ID: intake_0003
Revises: intake_0002
Create Date: 2026-11-23 17:21:19.932643
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0003"
down_revision: str | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "early_certificate",
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("type_name", sa.String(length=200), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("application_id"),
        schema="intake",
    )


def downgrade() -> None:
    op.drop_table("early_certificate", schema="intake")
