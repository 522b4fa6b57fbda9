"""Registry, access policy, consents, the hash-chained lookup audit, item copies and the
e-certificate library.

Revision ID: sharing_0002
Revises: sharing_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "sharing_0002"
down_revision: str | None = "sharing_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64

TABLES = (
    "certificate_status_change",
    "certificate",
    "signing_key",
    "certificate_serial",
    "certificate_type",
    "item_version_copy",
    "audit_head",
    "lookup_audit",
    "consent",
    "access_grant",
    "dataset",
    "provider",
)


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="sharing",
    )
    op.create_table(
        "certificate_serial",
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("issuer_code", sa.String(length=18), nullable=False),
        sa.Column("next_serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("type_code", "issuer_code"),
        schema="sharing",
    )
    op.create_table(
        "certificate_type",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("issuing_department", sa.String(length=100), nullable=False),
        sa.Column("issuer_code", sa.String(length=18), nullable=False),
        sa.Column("holder_kind", sa.String(length=16), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=True),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("code"),
        schema="sharing",
    )
    op.create_table(
        "consent",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("application_id", sa.String(length=64), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        schema="sharing",
    )
    op.create_index(
        "ix_consent_subject_item",
        "consent",
        ["subject_ref", "item_code"],
        unique=False,
        schema="sharing",
    )
    op.create_table(
        "item_version_copy",
        sa.Column("version_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("item_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("implementing_code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("materials", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version_id"),
        schema="sharing",
    )
    op.create_index(
        op.f("ix_sharing_item_version_copy_implementing_code"),
        "item_version_copy",
        ["implementing_code"],
        unique=False,
        schema="sharing",
    )
    op.create_table(
        "lookup_audit",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("subject_masked", sa.String(length=32), nullable=False),
        sa.Column("dataset_code", sa.String(length=64), nullable=False),
        sa.Column("fields", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("predicates", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("application_id", sa.String(length=64), nullable=True),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
        schema="sharing",
    )
    op.create_index(
        "ix_lookup_audit_application",
        "lookup_audit",
        ["application_id"],
        unique=False,
        schema="sharing",
    )
    op.create_index(
        "ix_lookup_audit_subject",
        "lookup_audit",
        ["subject_ref", "seq"],
        unique=False,
        schema="sharing",
    )
    op.create_table(
        "provider",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=True),
        sa.Column("token_enc", sa.Text(), nullable=True),
        sa.Column("connect_timeout_s", sa.Float(), nullable=False),
        sa.Column("read_timeout_s", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
        schema="sharing",
    )
    op.create_table(
        "signing_key",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("issuer_code", sa.String(length=18), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("private_key_enc", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
        schema="sharing",
    )
    op.create_index(
        op.f("ix_sharing_signing_key_issuer_code"),
        "signing_key",
        ["issuer_code"],
        unique=False,
        schema="sharing",
    )
    op.create_table(
        "certificate",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("issuer_code", sa.String(length=18), nullable=False),
        sa.Column("application_id", sa.String(length=64), nullable=False),
        sa.Column("holder_kind", sa.String(length=16), nullable=False),
        sa.Column("holder_ref", sa.String(length=64), nullable=False),
        sa.Column("document_enc", sa.Text(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["kid"],
            ["sharing.signing_key.kid"],
        ),
        sa.ForeignKeyConstraint(
            ["type_code"],
            ["sharing.certificate_type.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("application_id", "type_code"),
        schema="sharing",
    )
    op.create_index(
        "ix_certificate_holder",
        "certificate",
        ["holder_ref", "issued_at"],
        unique=False,
        schema="sharing",
    )
    op.create_table(
        "dataset",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("provider_code", sa.String(length=40), nullable=False),
        sa.Column("subject_kinds", postgresql.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("freshness", sa.String(length=40), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_code"],
            ["sharing.provider.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
        schema="sharing",
    )
    op.create_table(
        "access_grant",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("dataset_code", sa.String(length=64), nullable=False),
        sa.Column("item_code", sa.String(length=64), nullable=False),
        sa.Column("disclose_fields", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("verify_fields", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("consent_required", sa.Boolean(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["dataset_code"],
            ["sharing.dataset.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consumer", "dataset_code", "item_code"),
        schema="sharing",
    )
    op.create_table(
        "certificate_status_change",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("certificate_id", sa.String(length=120), nullable=False),
        sa.Column("from_status", sa.String(length=8), nullable=False),
        sa.Column("to_status", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["sharing.certificate.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="sharing",
    )
    op.create_index(
        op.f("ix_sharing_certificate_status_change_certificate_id"),
        "certificate_status_change",
        ["certificate_id"],
        unique=False,
        schema="sharing",
    )

    op.execute(
        sa.text(
            "INSERT INTO sharing.audit_head (id, seq, hash) VALUES (1, 0, :genesis)"
        ).bindparams(genesis=GENESIS_HASH)
    )
    # Append-only at the database level too: the application never updates or deletes audit
    # records, and a role that tries gets an error. The hash chain is what detects changes made
    # by someone who can bypass this (a superuser, a restored backup).
    op.execute(
        """
        CREATE FUNCTION sharing.lookup_audit_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'sharing.lookup_audit is append-only';
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER lookup_audit_append_only
        BEFORE UPDATE OR DELETE OR TRUNCATE ON sharing.lookup_audit
        FOR EACH STATEMENT EXECUTE FUNCTION sharing.lookup_audit_append_only()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS lookup_audit_append_only ON sharing.lookup_audit")
    op.execute("DROP FUNCTION IF EXISTS sharing.lookup_audit_append_only()")
    for table in TABLES:
        op.drop_table(table, schema="sharing")
