"""The citizens' search index of current published versions (narrow rows, GIN).

Revision ID: catalog_0003
Revises: catalog_0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR, UUID

revision: str = "catalog_0003"
down_revision: str | None = "catalog_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "catalog"


def upgrade() -> None:
    op.create_table(
        "item_search",
        sa.Column(
            "version_id",
            UUID(as_uuid=False),
            sa.ForeignKey(f"{S}.item_version.id"),
            primary_key=True,
        ),
        sa.Column("item_id", UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("implementing_code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("item_type", sa.String(16), nullable=False),
        sa.Column("serves", ARRAY(sa.String(8)), nullable=False),
        sa.Column("themes", ARRAY(sa.String(40)), nullable=False),
        sa.Column("channels", ARRAY(sa.String(8)), nullable=False),
        sa.Column("lists", ARRAY(sa.String(8)), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("auto_approval", sa.Boolean, nullable=False),
        sa.Column("committed_days", sa.Integer),
        sa.Column("search", TSVECTOR, nullable=False),
        schema=S,
    )
    op.create_index(
        "ix_item_search_search", "item_search", ["search"], postgresql_using="gin", schema=S
    )
    # Existing current versions enter the index.
    op.execute(
        "INSERT INTO catalog.item_search (version_id, item_id, implementing_code, name, "
        "department, item_type, serves, themes, channels, lists, scope, auto_approval, "
        "committed_days, search) "
        "SELECT v.id, v.item_id, i.implementing_code, v.name, v.department, v.item_type, "
        "v.serves, v.themes, v.channels, v.lists, v.scope, v.auto_approval, v.committed_days, "
        "v.search FROM catalog.item_version v JOIN catalog.item i ON i.current_version_id = v.id"
    )


def downgrade() -> None:
    op.drop_table("item_search", schema=S)
