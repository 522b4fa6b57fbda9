"""The search index carries each item's 主项, so a hit on a 子项 shows its main item.

Revision ID: catalog_0008
Revises: catalog_0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0008"
down_revision: str | None = "catalog_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "catalog"


def upgrade() -> None:
    op.add_column("item_search", sa.Column("main_item", sa.String(200)), schema=S)
    op.execute(
        "UPDATE catalog.item_search s SET main_item = v.content ->> 'main_item' "
        "FROM catalog.item_version v WHERE v.id = s.version_id"
    )


def downgrade() -> None:
    op.drop_column("item_search", "main_item", schema=S)
