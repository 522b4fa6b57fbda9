"""Four-eyes publishing: who created, edited, submitted, approved and published each item
version, and the rule-change record of every reviewed change.

Revision ID: catalog_0004
Revises: catalog_0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "catalog_0004"
down_revision: str | None = "catalog_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "catalog"

_AUTHORSHIP = ("created_by", "edited_by", "submitted_by", "approved_by", "published_by")


def upgrade() -> None:
    for column in _AUTHORSHIP:
        op.add_column("item_version", sa.Column(column, sa.String(128)), schema=S)
    op.add_column("item_version", sa.Column("submitted_at", sa.DateTime(timezone=True)), schema=S)
    op.create_table(
        "rule_change",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("item_id", UUID(as_uuid=False), sa.ForeignKey(f"{S}.item.id"), nullable=False),
        sa.Column(
            "version_id",
            UUID(as_uuid=False),
            sa.ForeignKey(f"{S}.item_version.id"),
            nullable=False,
        ),
        sa.Column("implementing_code", sa.String(64), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("previous_version_id", UUID(as_uuid=False)),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("submitted_by", sa.String(128), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_fields", ARRAY(sa.String(40)), nullable=False),
        sa.Column("old", JSONB, nullable=False),
        sa.Column("new", JSONB, nullable=False),
        sa.Column("dry_run", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("rejection_reason", sa.String(500)),
        schema=S,
    )
    op.create_index("ix_rule_change_item", "rule_change", ["item_id", "submitted_at"], schema=S)


def downgrade() -> None:
    op.drop_table("rule_change", schema=S)
    op.drop_column("item_version", "submitted_at", schema=S)
    for column in reversed(_AUTHORSHIP):
        op.drop_column("item_version", column, schema=S)
