"""Recipients, one-time subscription consents, templates, inbox notifications, push messages,
the per-number SMS count and the shared WeChat access token.

Revision ID: notify_0002
Revises: notify_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "notify_0002"
down_revision: str | None = "notify_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "application_recipient",
        sa.Column("application_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("item_name", sa.String(length=200), nullable=False),
        sa.Column("applicant_name_masked", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("application_id"),
        schema="notify",
    )
    op.create_index(
        op.f("ix_notify_application_recipient_subject"),
        "application_recipient",
        ["subject"],
        unique=False,
        schema="notify",
    )
    op.create_table(
        "notification",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=True),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "subject"),
        schema="notify",
    )
    op.create_index(
        "ix_notification_inbox",
        "notification",
        ["subject", "created_at"],
        unique=False,
        schema="notify",
    )
    op.create_table(
        "recipient",
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("openid", sa.String(length=128), nullable=True),
        sa.Column("phone_enc", sa.Text(), nullable=True),
        sa.Column("phone_index", sa.String(length=64), nullable=True),
        sa.Column("phone_masked", sa.String(length=16), nullable=True),
        sa.Column("wechat_enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("fallback", sa.String(length=8), server_default=sa.text("'sms'"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("subject"),
        schema="notify",
    )
    op.create_table(
        "sms_daily_count",
        sa.Column("phone_index", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("phone_index", "day"),
        schema="notify",
    )
    op.create_table(
        "subscription_consent",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("template_id", sa.String(length=128), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="notify",
    )
    op.create_index(
        "ix_consent_unconsumed",
        "subscription_consent",
        ["subject", "template_id", "granted_at"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("consumed_at IS NULL"),
    )
    op.create_table(
        "template",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "channel", "version"),
        schema="notify",
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
        schema="notify",
    )
    op.create_table(
        "message",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("notification_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("template_version_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_ref", sa.String(length=128), nullable=True),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("failure_detail", sa.Text(), nullable=True),
        sa.Column("failure_field", sa.String(length=64), nullable=True),
        sa.Column("fallback_of", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notify.notification.id"],
        ),
        sa.ForeignKeyConstraint(
            ["template_version_id"],
            ["notify.template.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notification_id", "channel"),
        schema="notify",
    )
    op.create_index(
        "ix_message_due",
        "message",
        ["next_attempt_at"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    op.create_index(
        "ix_message_sending",
        "message",
        ["sending_since"],
        unique=False,
        schema="notify",
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.create_index(
        op.f("ix_notify_message_provider_ref"),
        "message",
        ["provider_ref"],
        unique=False,
        schema="notify",
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_notify_message_provider_ref"), table_name="message", schema="notify")
    op.drop_index(
        "ix_message_sending",
        table_name="message",
        schema="notify",
        postgresql_where=sa.text("status = 'sending'"),
    )
    op.drop_index(
        "ix_message_due",
        table_name="message",
        schema="notify",
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    op.drop_table("message", schema="notify")
    op.drop_table("wechat_access_token", schema="notify")
    op.drop_table("template", schema="notify")
    op.drop_index(
        "ix_consent_unconsumed",
        table_name="subscription_consent",
        schema="notify",
        postgresql_where=sa.text("consumed_at IS NULL"),
    )
    op.drop_table("subscription_consent", schema="notify")
    op.drop_table("sms_daily_count", schema="notify")
    op.drop_table("recipient", schema="notify")
    op.drop_index("ix_notification_inbox", table_name="notification", schema="notify")
    op.drop_table("notification", schema="notify")
    op.drop_index(
        op.f("ix_notify_application_recipient_subject"),
        table_name="application_recipient",
        schema="notify",
    )
    op.drop_table("application_recipient", schema="notify")
