"""Item and bundle version copies, applications with their timeline and materials, stored
files, ratings and rectifications.

Revision ID: intake_0002
Revises: intake_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "intake_0002"
down_revision: str | None = "intake_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "rectification",
    "rating",
    "stored_file",
    "application_material",
    "timeline",
    "application",
    "bundle_version",
    "item_version",
)


def upgrade() -> None:
    op.create_table(
        "application",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("item_version_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("bundle_version_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("item_name", sa.String(length=200), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("applicant_subject", sa.String(length=128), nullable=False),
        sa.Column("applicant_kind", sa.String(length=16), nullable=False),
        sa.Column("applicant_ref", sa.String(length=64), nullable=False),
        sa.Column("applicant_id_enc", sa.Text(), nullable=False),
        sa.Column("applicant_name_enc", sa.Text(), nullable=False),
        sa.Column("agent_subject", sa.String(length=128), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("accepting_window", sa.String(length=64), nullable=True),
        sa.Column("accepting_region", sa.String(length=12), nullable=True),
        sa.Column("accepted_by", sa.String(length=128), nullable=True),
        sa.Column("form", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("form_sources", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("tolerated_until", sa.Date(), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("committed_days", sa.Integer(), nullable=True),
        sa.Column("online_depth", sa.Integer(), nullable=True),
        sa.Column("visits", sa.Integer(), nullable=True),
        sa.Column("auto_approval", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["intake.application.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("applicant_subject", "idempotency_key"),
        schema="intake",
    )
    op.create_index(
        "ix_application_applicant",
        "application",
        ["applicant_subject", "created_at"],
        unique=False,
        schema="intake",
    )
    op.create_index(
        "ix_application_department",
        "application",
        ["department", "status"],
        unique=False,
        schema="intake",
    )
    op.create_index(
        "ix_application_window", "application", ["accepting_window"], unique=False, schema="intake"
    )
    op.create_index(
        op.f("ix_intake_application_applicant_ref"),
        "application",
        ["applicant_ref"],
        unique=False,
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_application_parent_id"),
        "application",
        ["parent_id"],
        unique=False,
        schema="intake",
    )
    op.create_table(
        "bundle_version",
        sa.Column("version_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("bundle_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("member_version_ids", postgresql.ARRAY(sa.String(length=36)), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version_id"),
        schema="intake",
    )
    op.create_table(
        "item_version",
        sa.Column("version_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("item_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("implementing_code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("region_code", sa.String(length=12), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("version_id"),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_item_version_item_id"),
        "item_version",
        ["item_id"],
        unique=False,
        schema="intake",
    )
    op.create_table(
        "stored_file",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("owner_subject", sa.String(length=128), nullable=False),
        sa.Column("material_name", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=120), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="intake",
    )
    op.create_index(
        "ix_stored_file_owner_material",
        "stored_file",
        ["owner_subject", "material_name"],
        unique=False,
        schema="intake",
    )
    op.create_table(
        "application_material",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("may_be_missing", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("evidence_kind", sa.String(length=16), nullable=True),
        sa.Column("evidence_id", sa.String(length=120), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["intake.application.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id", "index"),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_application_material_application_id"),
        "application_material",
        ["application_id"],
        unique=False,
        schema="intake",
    )
    op.create_table(
        "rating",
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.String(length=20)), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("prompted", sa.Boolean(), nullable=False),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["intake.application.id"],
        ),
        sa.PrimaryKeyConstraint("application_id"),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_rating_department"), "rating", ["department"], unique=False, schema="intake"
    )
    op.create_table(
        "timeline",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["intake.application.id"],
        ),
        sa.PrimaryKeyConstraint("seq"),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_timeline_application_id"),
        "timeline",
        ["application_id"],
        unique=False,
        schema="intake",
    )
    op.create_table(
        "rectification",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("application_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("return_visit", sa.Text(), nullable=False),
        sa.Column("return_visited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["intake.rating.application_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id"),
        schema="intake",
    )
    op.create_index(
        op.f("ix_intake_rectification_department"),
        "rectification",
        ["department"],
        unique=False,
        schema="intake",
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table, schema="intake")
