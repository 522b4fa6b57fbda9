"""Tables of the approval service, all in its own PostgreSQL schema ``approval``.

* copies of published item versions (rule sets, time limits, result kind) from the catalog;
* a case per application (审批案件): its step, queue, assignee, clock and due date;
* decisions, each with its explanation (rule results, the lookups used, timing);
* the action log of every case (actor, time, comment);
* the working-day override table loaded from the State Council's yearly notice.
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
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="approval")
kit_tables = define_kit_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class ItemVersionCopy(Base):
    __tablename__ = "item_version"

    version_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    item_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    implementing_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str] = mapped_column(String(100))
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Case(Base):
    """One application as the deciding department works on it."""

    __tablename__ = "case"
    __table_args__ = (Index("ix_case_queue", "department", "status"),)

    application_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False), index=True)
    item_version_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    item_code: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    """``submitted``, ``open`` (in a queue), ``correction`` (clock stopped), ``suspended``
    (特别程序, clock stopped), ``approved``, ``denied``, ``not_accepted``, ``withdrawn``."""
    step: Mapped[str] = mapped_column(String(20))
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    """The item's manual workflow (``[{"name", "role"}]``), fixed when the case is accepted."""
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    assignee: Mapped[str | None] = mapped_column(String(128))
    applicant_kind: Mapped[str] = mapped_column(String(16))
    applicant_id_enc: Mapped[str] = mapped_column(Text)
    applicant_name_enc: Mapped[str] = mapped_column(Text)
    applicant_age: Mapped[int | None] = mapped_column(Integer)
    applicant_region: Mapped[str | None] = mapped_column(String(12))
    form: Mapped[dict[str, Any]] = mapped_column(JSONB)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    committed_days: Mapped[int | None] = mapped_column(Integer)
    due_date: Mapped[date | None] = mapped_column(Date)
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    stopped_since: Mapped[date | None] = mapped_column(Date)
    """When the clock stopped (补正 or 特别程序); working days until it restarts do not count."""
    stopped_days: Mapped[int] = mapped_column(Integer, default=0)
    warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Decision(Base):
    """A decision and why: for the applicant ("why") and for an auditor."""

    __tablename__ = "decision"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("case.application_id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    """``auto`` (秒批) or ``manual``."""
    outcome: Mapped[str] = mapped_column(String(8))
    """``approve``, ``deny`` or ``refer`` (秒批 handed the case to a person)."""
    reason: Mapped[str] = mapped_column(Text)
    item_version_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    rule_set_hash: Mapped[str | None] = mapped_column(String(64))
    rule_results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    lookup_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    elapsed_ms: Mapped[float | None] = mapped_column(Float)
    decided_by: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EarlyAcceptance(Base):
    """An ``application.accepted`` that arrived before its ``application.submitted`` (the two
    share a key, so only a redelivery or a replay out of order does that): kept until the
    case opens, then applied as if it had come second."""

    __tablename__ = "early_acceptance"

    application_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    event: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """The event's data, validated again when it is applied."""
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CaseAction(Base):
    __tablename__ = "case_action"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("case.application_id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(24))
    comment: Mapped[str] = mapped_column(Text, default="")


class CalendarDay(Base):
    """The State Council's holiday schedule for a year chinesecalendar does not know yet
    (loaded by an operator), and local exceptions."""

    __tablename__ = "calendar_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(100), default="")


class CalendarYear(Base):
    """A year whose official schedule is completely loaded: deadlines in it are final."""

    __tablename__ = "calendar_year"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
