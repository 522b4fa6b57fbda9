"""Whether an application has a certificate kept for it

Revision ID: intake_0007
Revises: intake_0006
Create Date: 2026-12-08 12:00:00.000000

The decision's handler looked in ``early_certificate`` for every application; the row now says
whether there is anything to look for. Applications with a certificate kept are marked.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0007"
down_revision: str | None = "intake_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "application",
        sa.Column("certificate_kept", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema="intake",
    )
    op.execute(
        "UPDATE intake.application SET certificate_kept = true"
        " WHERE id IN (SELECT application_id FROM intake.early_certificate)"
    )


def downgrade() -> None:
    op.drop_column("application", "certificate_kept", schema="intake")
