"""Searches that found nothing: per query and day, how often, so admins see what citizens
could not find; and which of those queries an admin has handled.

Revision ID: catalog_0007
Revises: catalog_0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0007"
down_revision: str | None = "catalog_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "catalog"


def upgrade() -> None:
    op.create_table(
        "unmatched_search",
        sa.Column("query", sa.String(40), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("ix_unmatched_search_day", "unmatched_search", ["day"], schema=S)
    op.create_table(
        "unmatched_query_handled",
        sa.Column("query", sa.String(40), primary_key=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_by", sa.String(128), nullable=False),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("unmatched_query_handled", schema=S)
    op.drop_table("unmatched_search", schema=S)
