"""Items, item versions, bundles, bundle versions and synonym groups.

Revision ID: catalog_0002
Revises: catalog_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID

revision: str = "catalog_0002"
down_revision: str | None = "catalog_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "catalog"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("superseded_at", sa.DateTime(timezone=True)),
    ]


def upgrade() -> None:
    op.create_table(
        "item",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("implementing_code", sa.String(64), nullable=False, unique=True),
        sa.Column("current_version_id", UUID(as_uuid=False)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=S,
    )
    op.create_table(
        "item_version",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("item_id", UUID(as_uuid=False), sa.ForeignKey(f"{S}.item.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("content", JSONB, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("item_type", sa.String(16), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("region_code", sa.String(12), nullable=False),
        sa.Column("serves", ARRAY(sa.String(8)), nullable=False),
        sa.Column("themes", ARRAY(sa.String(40)), nullable=False),
        sa.Column("channels", ARRAY(sa.String(8)), nullable=False),
        sa.Column("lists", ARRAY(sa.String(8)), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("online_depth", sa.Integer),
        sa.Column("visits", sa.Integer),
        sa.Column("legal_days", sa.Integer),
        sa.Column("committed_days", sa.Integer),
        sa.Column("auto_approval", sa.Boolean, nullable=False),
        sa.Column("search", TSVECTOR, nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.UniqueConstraint("item_id", "version"),
        schema=S,
    )
    op.create_index(
        "ix_item_version_search", "item_version", ["search"], postgresql_using="gin", schema=S
    )
    op.create_index("ix_item_version_status", "item_version", ["status"], schema=S)
    op.create_table(
        "bundle",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("current_version_id", UUID(as_uuid=False)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=S,
    )
    op.create_table(
        "bundle_version",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column(
            "bundle_id", UUID(as_uuid=False), sa.ForeignKey(f"{S}.bundle.id"), nullable=False
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("content", JSONB, nullable=False),
        sa.Column("member_version_ids", ARRAY(sa.String(36)), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("bundle_id", "version"),
        schema=S,
    )
    op.create_table(
        "synonym_group",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("phrases", ARRAY(sa.String(60)), nullable=False),
        schema=S,
    )


def downgrade() -> None:
    for table in ("synonym_group", "bundle_version", "bundle", "item_version", "item"):
        op.drop_table(table, schema=S)
