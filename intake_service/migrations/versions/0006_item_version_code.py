"""Item versions by implementing code

Revision ID: intake_0006
Revises: intake_0005
Create Date: 2026-12-08 10:00:00.000000

Citizens apply for an item by its implementing code (the gateway no longer asks the catalog for
the current version's id): intake finds the item's latest version in its copy by this index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "intake_0006"
down_revision: str | None = "intake_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_item_version_code",
        "item_version",
        ["implementing_code", "published_at"],
        schema="intake",
    )


def downgrade() -> None:
    op.drop_index("ix_item_version_code", table_name="item_version", schema="intake")
