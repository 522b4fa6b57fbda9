"""Long admin operations as jobs: the ``job`` table the import worker claims rows from.

Revision ID: catalog_0005
Revises: catalog_0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "catalog_0005"
down_revision: str | None = "catalog_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "catalog"


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("upload", sa.LargeBinary),
        sa.Column("materials", sa.LargeBinary),
        sa.Column("total", sa.Integer),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("errors", JSONB, nullable=False),
        sa.Column("problem", JSONB),
        sa.Column("result", JSONB),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("department", sa.String(100)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        schema=S,
    )
    op.create_index("ix_job_status", "job", ["status", "created_at"], schema=S)
    op.create_index("ix_job_actor", "job", ["actor", "created_at"], schema=S)


def downgrade() -> None:
    op.drop_table("job", schema=S)
