"""Tables of the sharing service, all in its own PostgreSQL schema ``sharing``.

Four groups:

* the registry: data providers (departments' systems), their datasets (fields with a
  sensitivity level) and the access policy (which consumer may ask which fields of which
  dataset for which item);
* consents and the lookup audit log (append-only, hash-chained; see :mod:`sharing_service.audit`);
* copies of published item versions (from the catalog's events), for material resolution;
* the e-certificate library: certificate types, issuers' signing keys, certificates and their
  status history.

Personal data at rest: subjects are stored as a blind index (HMAC) plus a masked form for
display; certificate documents (which must carry the holder's name and ID number) and signing
keys are encrypted with the platform's field key (:class:`wangban.crypto.FieldCipher`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="sharing")
kit_tables = define_kit_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


# --- registry -----------------------------------------------------------------------------------


class Provider(Base):
    """A department's data system that answers lookups."""

    __tablename__ = "provider"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    """``sandbox`` (the built-in synthetic population) or ``http`` (docs/provider-protocol.md)."""
    base_url: Mapped[str | None] = mapped_column(String(500))
    token_enc: Mapped[str | None] = mapped_column(Text)
    """The bearer credential for an ``http`` provider, encrypted with the field key."""
    connect_timeout_s: Mapped[float] = mapped_column(Float, default=2.0)
    read_timeout_s: Mapped[float] = mapped_column(Float, default=5.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Dataset(Base):
    """A dataset a provider shares, e.g. 公安·户籍人口信息."""

    __tablename__ = "dataset"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    provider_code: Mapped[str] = mapped_column(ForeignKey("provider.code"))
    subject_kinds: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    legal_basis: Mapped[str] = mapped_column(Text)
    freshness: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    """``[{"name", "title", "type", "sensitivity"}]``; sensitivity 1 公开 … 4 敏感个人信息."""


class AccessGrant(Base):
    """One line of the access policy: ``consumer`` may ask ``dataset`` for ``item_code``.

    ``disclose_fields`` may be returned as values; ``verify_fields`` may only be tested by
    predicates (the answer is true/false, the value never leaves). Anything not granted is
    denied.
    """

    __tablename__ = "access_grant"
    __table_args__ = (UniqueConstraint("consumer", "dataset_code", "item_code"),)

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    consumer: Mapped[str] = mapped_column(String(64))
    dataset_code: Mapped[str] = mapped_column(ForeignKey("dataset.code"))
    item_code: Mapped[str] = mapped_column(String(64))
    disclose_fields: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    verify_fields: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    consent_required: Mapped[bool] = mapped_column(Boolean, default=False)
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Consent(Base):
    """A subject's consent to lookups of their data for one item (and application)."""

    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_subject_item", "subject_ref", "item_code"),)

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64))
    item_code: Mapped[str] = mapped_column(String(64))
    application_id: Mapped[str | None] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# --- audit --------------------------------------------------------------------------------------


class LookupAudit(Base):
    """One lookup, whatever its outcome. Append-only; each row carries the hash of the one
    before it (``prev_hash``) and its own (``hash``) over its content, so any edit, deletion or
    insertion shows up when the chain is verified."""

    __tablename__ = "lookup_audit"
    __table_args__ = (
        Index("ix_lookup_audit_subject", "subject_ref", "seq"),
        Index("ix_lookup_audit_application", "application_id"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(UUID(as_uuid=False), unique=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    consumer: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(128))
    """The identity subject of the caller (a service name or a staff user id)."""
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_ref: Mapped[str] = mapped_column(String(64))
    subject_masked: Mapped[str] = mapped_column(String(32))
    dataset_code: Mapped[str] = mapped_column(String(64))
    fields: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    predicates: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    """Names, fields and operators of the predicates asked (never the record's values)."""
    application_id: Mapped[str | None] = mapped_column(String(64))
    item_code: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    """``granted``, ``not_found``, ``denied`` or ``unavailable``."""
    reason: Mapped[str] = mapped_column(Text, default="")
    actor_subject: Mapped[str | None] = mapped_column(String(128))
    """The human on whose behalf a service asked (window clerk, reviewer, the applicant), from
    the signed actor token the service forwarded; NULL for a service acting alone (秒批)."""
    actor_department: Mapped[str | None] = mapped_column(String(100))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    """A staff role (``window_clerk``, ``reviewer`` …), or ``citizen``/``company`` for the
    applicant themselves."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The end of the audit chain (one row): locked by each appender, so sequence numbers have
    no gaps and every record links to exactly the one before it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditStream(Base):
    """How far the audit log has been published as ``lookup.audited`` (one row), saved every
    few seconds by the publishing replica (:mod:`sharing_service.audit_stream`): after a crash
    the records since the last save are published again (at least once)."""

    __tablename__ = "audit_stream"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    published_seq: Mapped[int] = mapped_column(BigInteger)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- items (copies from the catalog's events) ----------------------------------------------------


class ItemVersionCopy(Base):
    """A published item version as the catalog announced it: what material resolution needs."""

    __tablename__ = "item_version_copy"

    version_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    item_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    implementing_code: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    materials: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- e-certificates -----------------------------------------------------------------------------


class CertificateType(Base):
    __tablename__ = "certificate_type"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    """Our type code, lower case as items name it (``business_license``)."""
    name: Mapped[str] = mapped_column(String(100))
    issuing_department: Mapped[str] = mapped_column(String(100))
    issuer_code: Mapped[str] = mapped_column(String(18))
    """The issuing department's unified social credit code."""
    holder_kind: Mapped[str] = mapped_column(String(16))
    validity_days: Mapped[int | None] = mapped_column(Integer)
    """None: valid until revoked (长期有效)."""
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    """``[{"name", "title", "required"}]``: what the certificate states besides its holder."""


class SigningKey(Base):
    """An issuer's Ed25519 key. A retired key signs nothing new but still verifies what it
    signed, so rotating keys never invalidates issued certificates."""

    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer_code: Mapped[str] = mapped_column(String(18), index=True)
    public_key: Mapped[str] = mapped_column(String(64))
    private_key_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CertificateSerial(Base):
    """The next serial number (流水号) per certificate type and issuer."""

    __tablename__ = "certificate_serial"

    type_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    issuer_code: Mapped[str] = mapped_column(String(18), primary_key=True)
    next_serial: Mapped[int] = mapped_column(BigInteger)


class CreditCodeSerial(Base):
    """The next serial from which a registration authority assigns credit codes (赋码) to the
    market entities it registers (设立登记), per authority and region."""

    __tablename__ = "credit_code_serial"

    authority: Mapped[str] = mapped_column(String(2), primary_key=True)
    """登记管理部门代码 and 机构类别代码, e.g. ``92`` for a 个体工商户 registered by 市场监管."""
    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    next_serial: Mapped[int] = mapped_column(BigInteger)


class Certificate(Base):
    __tablename__ = "certificate"
    __table_args__ = (
        UniqueConstraint("application_id", "type_code"),
        Index("ix_certificate_holder", "holder_ref", "issued_at"),
        Index(
            "ix_certificate_founder",
            "founder_ref",
            "issued_at",
            postgresql_where=text("founder_ref IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    """The national-style identifier (:mod:`sharing_service.certificate_ids`)."""
    type_code: Mapped[str] = mapped_column(ForeignKey("certificate_type.code"))
    issuer_code: Mapped[str] = mapped_column(String(18))
    application_id: Mapped[str] = mapped_column(String(64))
    holder_kind: Mapped[str] = mapped_column(String(16))
    holder_ref: Mapped[str] = mapped_column(String(64))
    """Blind index of the holder's ID number (persons) or the credit code (companies)."""
    founder_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """设立登记: blind index of the person who registered the entity holding this licence
    (经营者 or 法定代表人); their wallet shows it beside their own certificates."""
    document_enc: Mapped[str] = mapped_column(Text)
    """The signed JSON document, encrypted: it names the holder."""
    kid: Mapped[str] = mapped_column(ForeignKey("signing_key.kid"))
    signature: Mapped[str] = mapped_column(String(128))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CertificateStatusChange(Base):
    __tablename__ = "certificate_status_change"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(ForeignKey("certificate.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(8))
    to_status: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
