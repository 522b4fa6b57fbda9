"""Tables of the catalog service, all in its own PostgreSQL schema ``catalog``.

An item (事项) is identified by its implementing code (实施编码); what it says lives in
immutable *versions*. Applications are bound to a version id, so a version, once published,
never changes and stays readable after a newer one replaces it. The filterable elements are
copied out of the JSON content into columns, and the search terms into a weighted tsvector.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wangban.outbox import define_kit_tables

metadata = MetaData(schema="catalog")
kit_tables = define_kit_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Item(Base):
    __tablename__ = "item"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    implementing_code: Mapped[str] = mapped_column(String(64), unique=True)
    current_version_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    """The published version citizens see; None while never published or withdrawn."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ItemVersion(Base):
    __tablename__ = "item_version"
    __table_args__ = (
        UniqueConstraint("item_id", "version"),
        Index("ix_item_version_search", "search", postgresql_using="gin"),
        Index("ix_item_version_status", "status"),
    )

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("item.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, object]] = mapped_column(JSONB)
    # Copied out of ``content`` for filters, lists and statistics.
    name: Mapped[str] = mapped_column(String(200))
    item_type: Mapped[str] = mapped_column(String(16))
    department: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(12))
    serves: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    themes: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    lists: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    """The 四办 lists this version belongs to, derived from its attributes at save time."""
    scope: Mapped[str] = mapped_column(String(16))
    online_depth: Mapped[int | None] = mapped_column(Integer)
    visits: Mapped[int | None] = mapped_column(Integer)
    legal_days: Mapped[int | None] = mapped_column(Integer)
    committed_days: Mapped[int | None] = mapped_column(Integer)
    auto_approval: Mapped[bool] = mapped_column(Boolean)
    search: Mapped[str] = mapped_column(TSVECTOR)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Who did what to this version (staff subject ids; None for the system's seeds).
    created_by: Mapped[str | None] = mapped_column(String(128))
    edited_by: Mapped[str | None] = mapped_column(String(128))
    """Who saved its content last: may not approve it (四眼原则)."""
    submitted_by: Mapped[str | None] = mapped_column(String(128))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(String(128))
    """The second person who approved a reviewed change; None when it needed no review."""
    published_by: Mapped[str | None] = mapped_column(String(128))


class RuleChange(Base):
    """One submitted change of what decides applications (秒批 rules, 受理条件, time limits,
    workflow, owner): who proposed it, the old and new values, what the proposed rules would
    have decided on recent cases, and who approved or rejected it. Kept for auditors; never
    edited after its decision."""

    __tablename__ = "rule_change"
    __table_args__ = (Index("ix_rule_change_item", "item_id", "submitted_at"),)

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("item.id"))
    version_id: Mapped[str] = mapped_column(ForeignKey("item_version.id"))
    implementing_code: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(100))
    """The owning department of the new version (whose approvers decide)."""
    previous_version_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    author: Mapped[str] = mapped_column(String(128))
    """Who last edited the version's content."""
    submitted_by: Mapped[str] = mapped_column(String(128))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_fields: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    old: Mapped[dict[str, object]] = mapped_column(JSONB)
    """The reviewed fields as published before (empty for a new item)."""
    new: Mapped[dict[str, object]] = mapped_column(JSONB)
    dry_run: Mapped[dict[str, object]] = mapped_column(JSONB)
    """The proposed rules replayed on the item's recent decided cases (approval service), or
    ``{"status": "unavailable", ...}`` when it could not answer."""
    status: Mapped[str] = mapped_column(String(16))
    """``pending``, ``approved`` or ``rejected``."""
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rejection_reason: Mapped[str | None] = mapped_column(String(500))


class ItemSearch(Base):
    """The citizens' search index: one narrow row per item's *current published* version.

    Kept apart from ``item_version`` on purpose: those rows carry the whole JSON content, so
    PostgreSQL compresses them, and scanning their tsvectors means decompressing every row.
    Here a row is small (name and terms), which keeps a search over thousands of items at a
    few milliseconds.
    """

    __tablename__ = "item_search"
    __table_args__ = (Index("ix_item_search_search", "search", postgresql_using="gin"),)

    version_id: Mapped[str] = mapped_column(
        UUID(as_uuid=False), ForeignKey("item_version.id"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(UUID(as_uuid=False), unique=True)
    implementing_code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    # What result lists show and filter on, copied from the version.
    department: Mapped[str] = mapped_column(String(100))
    item_type: Mapped[str] = mapped_column(String(16))
    serves: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    themes: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    lists: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    scope: Mapped[str] = mapped_column(String(16))
    auto_approval: Mapped[bool] = mapped_column(Boolean)
    committed_days: Mapped[int | None] = mapped_column(Integer)
    main_item: Mapped[str | None] = mapped_column(String(200))
    """The 主项 (by name) this item is a 子项 of, shown with a search hit."""
    search: Mapped[str] = mapped_column(TSVECTOR)


class Bundle(Base):
    __tablename__ = "bundle"

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    current_version_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BundleVersion(Base):
    __tablename__ = "bundle_version"
    __table_args__ = (UniqueConstraint("bundle_id", "version"),)

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    bundle_id: Mapped[str] = mapped_column(ForeignKey("bundle.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    content: Mapped[dict[str, object]] = mapped_column(JSONB)
    member_version_ids: Mapped[list[str]] = mapped_column(ARRAY(String(36)))
    """The item versions the bundle was published with (bound like an application's)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SynonymGroup(Base):
    """Phrases citizens use for the same thing (身份证 / 居民身份证).

    Two layers in one table: ``shipped`` rows are the citizen lexicon of the release that
    loaded them (``lexicon_version``, ``group_key`` from catalog_service/lexicon), replaced
    whole when a newer release ships a newer lexicon; ``admin`` rows are what admins keep
    through ``PUT /admin/synonyms`` and are never touched by a lexicon load.
    """

    __tablename__ = "synonym_group"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    phrases: Mapped[list[str]] = mapped_column(ARRAY(String(60)))
    origin: Mapped[str] = mapped_column(String(8), server_default="admin")
    lexicon_version: Mapped[int | None] = mapped_column(Integer)
    group_key: Mapped[str | None] = mapped_column(String(100))


class DisabledShippedGroup(Base):
    """A shipped lexicon group an admin switched off (it matched the wrong items), by key.

    Kept apart from the shipped rows so the choice survives the next lexicon version: a group
    with the same key stays off; a key the new version no longer has simply matches nothing.
    """

    __tablename__ = "synonym_disabled"

    group_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    disabled_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Job(Base):
    """A long admin operation (an import) run by the catalogue's background worker, so the
    request that asks for it answers at once (202) and nobody waits on a gateway timeout.

    The worker claims a queued job with ``FOR UPDATE SKIP LOCKED`` and holds a lease it renews
    while it works; a job whose lease ran out (its process died) is claimed again and run from
    the start, which is safe because an import commits whole or not at all, together with the
    job's result. After ``MAX_ATTEMPTS`` claims it is failed instead (``catalog_service.jobs``).
    """

    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_status", "status", "created_at"),
        Index("ix_job_actor", "actor", "created_at"),
    )

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    """``import``."""
    status: Mapped[str] = mapped_column(String(16))
    """``queued``, ``running``, ``succeeded`` or ``failed``."""
    params: Mapped[dict[str, object]] = mapped_column(JSONB)
    """What the operation needs besides the upload (format, mapping, the actor's scope)."""
    upload: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The uploaded file; dropped once the job is finished."""
    materials: Mapped[bytes | None] = mapped_column(LargeBinary)
    total: Mapped[int | None] = mapped_column(Integer)
    """Rows to apply, known once the file is parsed."""
    done: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, object]]] = mapped_column(JSONB, default=list)
    """Per-row errors of a failed job (row, column, reason), as the synchronous import gave."""
    problem: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    """Why the job failed, as a problem document (type, title, detail)."""
    result: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    actor: Mapped[str] = mapped_column(String(128))
    """Who asked (staff subject id): they and auditors read the job."""
    department: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UnmatchedSearch(Base):
    """How often citizens searched for a query that found nothing, per day (UTC), so admins see
    what they could not find (``catalog_service.unmatched``). Only the normalised query text is
    kept: no person, session, address or filter; queries that look like personal data are never
    written (see :func:`catalog_service.unmatched.recordable`)."""

    __tablename__ = "unmatched_search"
    __table_args__ = (Index("ix_unmatched_search_day", "day"),)

    query: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UnmatchedQueryHandled(Base):
    """An admin dealt with an unmatched query (added a synonym or keyword, or decided it needs
    nothing). It is listed again only when citizens search for it, still in vain, afterwards."""

    __tablename__ = "unmatched_query_handled"

    query: Mapped[str] = mapped_column(String(40), primary_key=True)
    handled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    handled_by: Mapped[str] = mapped_column(String(128))
