"""设立登记: the registered entity holds its licence, and the person who founded it sees it.

``credit_code_serial`` is the counter from which credit codes are assigned to newly
registered entities, per registration authority and region; ``certificate.founder_ref`` is
the blind index of the founder (经营者 or 法定代表人) of the entity that holds a licence.

Revision ID: sharing_0005
Revises: sharing_0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sharing_0005"
down_revision: str | None = "sharing_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_code_serial",
        sa.Column("authority", sa.String(length=2), primary_key=True),
        sa.Column("region_code", sa.String(length=6), primary_key=True),
        sa.Column("next_serial", sa.BigInteger(), nullable=False),
        schema="sharing",
    )
    op.add_column(
        "certificate",
        sa.Column("founder_ref", sa.String(length=64), nullable=True),
        schema="sharing",
    )
    op.create_index(
        "ix_certificate_founder",
        "certificate",
        ["founder_ref", "issued_at"],
        schema="sharing",
        postgresql_where=sa.text("founder_ref IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_certificate_founder", table_name="certificate", schema="sharing")
    op.drop_column("certificate", "founder_ref", schema="sharing")
    op.drop_table("credit_code_serial", schema="sharing")
