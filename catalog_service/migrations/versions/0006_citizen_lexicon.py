"""The citizen lexicon as the shipped layer of the synonym table: rows say where they come from
(``origin`` shipped or admin, the lexicon version and group key), and admins can switch a
shipped group off (``synonym_disabled``). Existing rows are the admins' own.

Revision ID: catalog_0006
Revises: catalog_0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0006"
down_revision: str | None = "catalog_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "catalog"


def upgrade() -> None:
    op.add_column(
        "synonym_group",
        sa.Column("origin", sa.String(8), nullable=False, server_default="admin"),
        schema=S,
    )
    op.add_column("synonym_group", sa.Column("lexicon_version", sa.Integer), schema=S)
    op.add_column("synonym_group", sa.Column("group_key", sa.String(100)), schema=S)
    op.create_check_constraint(
        "synonym_group_origin", "synonym_group", "origin IN ('shipped', 'admin')", schema=S
    )
    op.create_table(
        "synonym_disabled",
        sa.Column("group_key", sa.String(100), primary_key=True),
        sa.Column(
            "disabled_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("synonym_disabled", schema=S)
    op.drop_constraint("synonym_group_origin", "synonym_group", schema=S)
    for column in ("group_key", "lexicon_version", "origin"):
        op.drop_column("synonym_group", column, schema=S)
