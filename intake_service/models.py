"""Tables of the intake service, all in its own PostgreSQL schema ``intake``.

* copies of published item and bundle versions (from the catalog's events): an application is
  bound to one version forever and intake never calls the catalog on its hot path;
* applications, their timeline (every transition with its actor) and their materials;
* stored files and the holder's material library (一次提交、重复使用);
* ratings (好差评) and the rectification cases bad ratings open.

The applicant's ID number and name are needed later (sharing lookups, the certificate), so they
are stored encrypted with a blind index for equality; the applicant is otherwise known by the
opaque identity subject.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="intake")
kit_tables = define_kit_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class ItemVersionCopy(Base):
    """A published item version as announced by the catalog (the whole content)."""

    __tablename__ = "item_version"
    __table_args__ = (
        # Applying by implementing code reads the item's latest version (one index probe).
        Index("ix_item_version_code", "implementing_code", "published_at"),
    )

    version_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    item_id: Mapped[str] = mapped_column(UUID(as_uuid=False), index=True)
    implementing_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(12))
    scope: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BundleVersionCopy(Base):
    __tablename__ = "bundle_version"

    version_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    bundle_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    member_version_ids: Mapped[list[str]] = mapped_column(ARRAY(String(36)))
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Application(Base):
    """One application (办件). A bundle submission is a parent with one child per member item;
    the parent carries the combined form and the aggregated status."""

    __tablename__ = "application"
    __table_args__ = (
        UniqueConstraint("applicant_subject", "idempotency_key"),
        Index("ix_application_applicant", "applicant_subject", "created_at"),
        Index("ix_application_department", "department", "status"),
        Index("ix_application_window", "accepting_window"),
    )

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``single``, ``bundle`` (a parent) or ``member`` (a child of a bundle)."""
    parent_id: Mapped[str | None] = mapped_column(
        UUID(as_uuid=False), ForeignKey("application.id"), index=True
    )
    item_version_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    bundle_version_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    item_code: Mapped[str] = mapped_column(String(64))
    """The implementing code (or the bundle code for a parent)."""
    item_name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(100))
    """The deciding department (for a parent: the bundle's lead, informational)."""
    region_code: Mapped[str] = mapped_column(String(12))
    """Where it is decided; ``accepting_region`` is where it was accepted (全城通办)."""
    applicant_subject: Mapped[str] = mapped_column(String(128))
    applicant_kind: Mapped[str] = mapped_column(String(16))
    applicant_ref: Mapped[str] = mapped_column(String(64), index=True)
    applicant_id_enc: Mapped[str] = mapped_column(Text)
    applicant_name_enc: Mapped[str] = mapped_column(Text)
    agent_subject: Mapped[str | None] = mapped_column(String(128))
    """Who filed it on the applicant's behalf (代办), if anyone."""
    channel: Mapped[str] = mapped_column(String(16))
    accepting_window: Mapped[str | None] = mapped_column(String(64))
    accepting_region: Mapped[str | None] = mapped_column(String(12))
    accepted_by: Mapped[str | None] = mapped_column(String(128))
    form: Mapped[dict[str, Any]] = mapped_column(JSONB)
    form_sources: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    """Form fields filled from government data: field → {dataset, provider, updated_at,
    lookup_id}. Those values are the department's, not the applicant's to change."""
    status: Mapped[str] = mapped_column(String(24))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    idempotency_fingerprint: Mapped[str | None] = mapped_column(String(64))
    """Keyed hash of the request the key came with
    (``applications.idempotency.request_fingerprint``): the same key with another request is
    refused. Null for applications from before it."""
    tolerated_until: Mapped[date | None] = mapped_column(Date)
    """容缺: the deadline for supplying the materials accepted as missing."""
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the applicant was last reminded of the 容缺 deadline."""
    committed_days: Mapped[int | None] = mapped_column(Integer)
    online_depth: Mapped[int | None] = mapped_column(Integer)
    visits: Mapped[int | None] = mapped_column(Integer)
    auto_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_date: Mapped[date | None] = mapped_column(Date)
    """Committed completion date (承诺办结时限 in working days from acceptance)."""
    certificate_kept: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Its certificate was issued before the application could take it and waits in
    ``early_certificate``: rare (the topics are not ordered with each other), so the decision's
    handler looks there only when this says so, and a handler that changes the row in one
    statement (``WHERE NOT certificate_kept``) meets a certificate kept concurrently in the
    row it locks, not in another table its snapshot may predate."""
    lock_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": lock_version}  # noqa: RUF012


class TimelineEntry(Base):
    """One transition of an application, as the applicant reads it."""

    __tablename__ = "timeline"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("application.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    actor_kind: Mapped[str] = mapped_column(String(16))
    """``applicant``, ``staff``, ``system`` or ``service``."""
    actor: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")


class ApplicationMaterial(Base):
    """How one required material of the application is met."""

    __tablename__ = "application_material"
    __table_args__ = (UniqueConstraint("application_id", "index"),)

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("application.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(120))
    required: Mapped[bool] = mapped_column(Boolean)
    may_be_missing: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    """``shared``, ``certificate``, ``uploaded``, ``reused``, ``commitment``, ``waived``,
    ``missing`` (still needed) or ``tolerated`` (accepted as missing: 容缺)."""
    evidence_kind: Mapped[str | None] = mapped_column(String(16))
    evidence_id: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str] = mapped_column(Text, default="")


class StoredFile(Base):
    """An uploaded file. Readable only by its owner and staff handling an application that
    uses it; offered again to its owner for the same material (material library)."""

    __tablename__ = "stored_file"
    __table_args__ = (Index("ix_stored_file_owner_material", "owner_subject", "material_name"),)

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    owner_subject: Mapped[str] = mapped_column(String(128))
    material_name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(120))
    media_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Rating(Base):
    """好差评: one immutable rating per completed application, by its applicant."""

    __tablename__ = "rating"

    application_id: Mapped[str] = mapped_column(ForeignKey("application.id"), primary_key=True)
    department: Mapped[str] = mapped_column(String(100), index=True)
    item_code: Mapped[str] = mapped_column(String(64))
    score: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(20)))
    comment: Mapped[str] = mapped_column(Text, default="")
    prompted: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when given after a reminder rather than of the applicant's own accord (主动评价)."""
    rated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Rectification(Base):
    """整改: opened by a rating of 1–2; the department replies, visits back and closes it."""

    __tablename__ = "rectification"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("rating.application_id"), unique=True)
    department: Mapped[str] = mapped_column(String(100), index=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    """``open``, ``replied``, ``closed``."""
    reply: Mapped[str] = mapped_column(Text, default="")
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    return_visit: Mapped[str] = mapped_column(Text, default="")
    return_visited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(String(128))


class EarlyCertificate(Base):
    """A certificate issued for an application that intake has not completed yet: sharing's
    ``certificate.issued`` and approval's decision travel on different topics, so after a
    restart or a 容缺 hold the certificate can come first. Kept until the application is
    completed, which then delivers it at once."""

    __tablename__ = "early_certificate"

    application_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    type_name: Mapped[str] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
