"""Staff-login throttling per username and client address (instead of locking the account),
and the refresh-token families ended early whose access tokens are refused.

Revision ID: gateway_0003
Revises: gateway_0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0003"
down_revision: str | None = "gateway_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("username_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username_hash", "address"),
        schema="gateway",
    )
    op.create_table(
        "revoked_family",
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("family_id"),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_revoked_family_expires_at"),
        "revoked_family",
        ["expires_at"],
        unique=False,
        schema="gateway",
    )
    # The account no longer locks: failures are counted per (username, address) above. The
    # old columns staff_account.failed_attempts and locked_until stay (unused, with their
    # defaults) for this release: migrations are additive, so pods of the previous release
    # keep working during the roll-out (docs/operations.md "Upgrade"); a later release drops them.


def downgrade() -> None:
    op.drop_index(
        op.f("ix_gateway_revoked_family_expires_at"),
        table_name="revoked_family",
        schema="gateway",
    )
    op.drop_table("revoked_family", schema="gateway")
    op.drop_table("login_throttle", schema="gateway")
