"""The fingerprint of the request an Idempotency-Key came with

Revision ID: intake_0005
Revises: intake_0004
Create Date: 2026-12-06 17:40:00.000000

Applications stored before have none: a repeat of their key counts as the same request.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0005"
down_revision: str | None = "intake_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "application",
        sa.Column("idempotency_fingerprint", sa.String(length=64), nullable=True),
        schema="intake",
    )


def downgrade() -> None:
    op.drop_column("application", "idempotency_fingerprint", schema="intake")
