"""Item version copies, cases, decisions, the action log and the working-day override table.

Revision ID: approval_0002
Revises: approval_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "approval_0002"
down_revision: str | None = "approval_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("case_action", "decision", "case", "item_version", "calendar_day", "calendar_year")


def upgrade() -> None:
    op.create_table(
        "calendar_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("working", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("day"),
        schema="approval",
    )
    op.create_table(
        "calendar_year",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("year"),
        schema="approval",
    )
    op.create_table(
        "case",
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("parent_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("item_version_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("applicant_kind", sa.String(length=16), nullable=False),
        sa.Column("applicant_id_enc", sa.Text(), nullable=False),
        sa.Column("applicant_name_enc", sa.Text(), nullable=False),
        sa.Column("applicant_age", sa.Integer(), nullable=True),
        sa.Column("applicant_region", sa.String(length=12), nullable=True),
        sa.Column("form", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("committed_days", sa.Integer(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("due_provisional", sa.Boolean(), nullable=False),
        sa.Column("stopped_since", sa.Date(), nullable=True),
        sa.Column("stopped_days", sa.Integer(), nullable=False),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("application_id"),
        schema="approval",
    )
    op.create_index(
        op.f("ix_approval_case_parent_id"), "case", ["parent_id"], unique=False, schema="approval"
    )
    op.create_index(
        "ix_case_queue", "case", ["department", "status"], unique=False, schema="approval"
    )
    op.create_table(
        "item_version",
        sa.Column("version_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("item_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("implementing_code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("version_id"),
        schema="approval",
    )
    op.create_table(
        "case_action",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["approval.case.application_id"],
        ),
        sa.PrimaryKeyConstraint("seq"),
        schema="approval",
    )
    op.create_index(
        op.f("ix_approval_case_action_application_id"),
        "case_action",
        ["application_id"],
        unique=False,
        schema="approval",
    )
    op.create_table(
        "decision",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("item_version_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("rule_set_hash", sa.String(length=64), nullable=True),
        sa.Column("rule_results", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("lookup_ids", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("elapsed_ms", sa.Float(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["approval.case.application_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="approval",
    )
    op.create_index(
        op.f("ix_approval_decision_application_id"),
        "decision",
        ["application_id"],
        unique=False,
        schema="approval",
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table, schema="approval")
