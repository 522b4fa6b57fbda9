"""Mini-program accounts, company bindings, face verifications, staff accounts, refresh tokens,
rate-limit counters and the shared WeChat access token.

Revision ID: gateway_0002
Revises: gateway_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "gateway_0002"
down_revision: str | None = "gateway_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("openid", sa.String(length=128), nullable=False),
        sa.Column("unionid", sa.String(length=128), nullable=True),
        sa.Column("assurance", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("name_enc", sa.Text(), nullable=True),
        sa.Column("id_number_enc", sa.Text(), nullable=True),
        sa.Column("person_ref", sa.String(length=64), nullable=True),
        sa.Column("real_name_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("real_person_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("subject"),
        sa.UniqueConstraint("openid"),
        sa.UniqueConstraint("person_ref"),
        schema="gateway",
    )
    op.create_table(
        "company_binding",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("company_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject", "uscc"),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_company_binding_subject"),
        "company_binding",
        ["subject"],
        unique=False,
        schema="gateway",
    )
    op.create_table(
        "face_verification",
        sa.Column("verify_id", sa.String(length=256), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("out_seq_no", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verify_ret", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("verify_id"),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_face_verification_subject"),
        "face_verification",
        ["subject"],
        unique=False,
        schema="gateway",
    )
    op.create_table(
        "rate_counter",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
        schema="gateway",
    )
    op.create_table(
        "refresh_token",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("principal", sa.String(length=8), nullable=False),
        sa.Column("claims", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        schema="gateway",
    )
    op.create_index(
        "ix_refresh_family", "refresh_token", ["family_id"], unique=False, schema="gateway"
    )
    op.create_table(
        "staff_account",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("roles", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=12), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("username"),
        sa.UniqueConstraint("subject"),
        schema="gateway",
    )
    op.create_table(
        "wechat_access_token",
        sa.Column("appid", sa.String(length=64), nullable=False),
        sa.Column("token_enc", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("appid"),
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_table("wechat_access_token", schema="gateway")
    op.drop_table("staff_account", schema="gateway")
    op.drop_index("ix_refresh_family", table_name="refresh_token", schema="gateway")
    op.drop_table("refresh_token", schema="gateway")
    op.drop_table("rate_counter", schema="gateway")
    op.drop_index(
        op.f("ix_gateway_face_verification_subject"),
        table_name="face_verification",
        schema="gateway",
    )
    op.drop_table("face_verification", schema="gateway")
    op.drop_index(
        op.f("ix_gateway_company_binding_subject"), table_name="company_binding", schema="gateway"
    )
    op.drop_table("company_binding", schema="gateway")
    op.drop_table("account", schema="gateway")
