"""Every query of the intake service."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    SQLColumnExpression,
    and_,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from intake_service.models import (
    Application,
    ApplicationMaterial,
    Base,
    BundleVersionCopy,
    EarlyCertificate,
    ItemVersionCopy,
    Rating,
    Rectification,
    StoredFile,
    TimelineEntry,
)
from wangban.db import literal_rows

# --- version copies -----------------------------------------------------------------------------


async def item_version(session: AsyncSession, version_id: str) -> ItemVersionCopy | None:
    return await session.get(ItemVersionCopy, version_id)


async def current_item_version_id(
    session: AsyncSession, implementing_code: str
) -> tuple[str, datetime | None] | None:
    """The id and withdrawal of the latest version of the item with this implementing code
    that intake's copy has, by the index on (code, published_at); not the content, which the
    process keeps (``catalog_copies.COPIES``)."""
    row = (
        await session.execute(
            select(ItemVersionCopy.version_id, ItemVersionCopy.withdrawn_at)
            .where(ItemVersionCopy.implementing_code == implementing_code)
            .order_by(ItemVersionCopy.published_at.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (row.version_id, row.withdrawn_at)


async def save_item_version(session: AsyncSession, values: dict[str, object]) -> None:
    """Store a published version once; a redelivered event changes nothing."""
    await session.execute(
        insert(ItemVersionCopy)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["version_id"])
    )


async def mark_item_withdrawn(session: AsyncSession, *, item_id: str, at: object) -> None:
    rows = await session.scalars(select(ItemVersionCopy).where(ItemVersionCopy.item_id == item_id))
    for row in rows:
        if row.withdrawn_at is None:
            row.withdrawn_at = at  # type: ignore[assignment]


async def bundle_version(session: AsyncSession, version_id: str) -> BundleVersionCopy | None:
    return await session.get(BundleVersionCopy, version_id)


async def save_bundle_version(session: AsyncSession, values: dict[str, object]) -> None:
    await session.execute(
        insert(BundleVersionCopy)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["version_id"])
    )


# --- applications -------------------------------------------------------------------------------


async def application(
    session: AsyncSession, application_id: str, *, lock: bool = False
) -> Application | None:
    query = select(Application).where(Application.id == application_id)
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


def _row_values(instance: Any, table: FromClause) -> dict[str, Any]:
    """The column values of an instance built in memory (attribute and column names agree in
    these models), its unset columns given their defaults, on the instance too, as a flush
    would have given them (its lock version above all: the next flush compares it). Not for
    an instance a session has (it would be changed)."""
    row = {}
    for c in table.columns:
        value, default = getattr(instance, c.key), getattr(c, "default", None)
        if value is None and default is not None and default.is_scalar:
            value = default.arg
        elif value is None and default is not None and default.is_callable:
            value = default.arg(None)
        # Set even when None: an attribute never set would be read from the database later.
        setattr(instance, c.key, value)
        row[c.key] = value
    return row


def _children(
    model: type[Base], instances: Sequence[Any], *, of: Any, leave_out: Sequence[str]
) -> Any:
    """INSERT … SELECT of ``instances`` (rows of ``table`` built in memory) as children of the
    application row(s) the CTE ``of`` returns (its ``id``): none when it returns none. The
    values go as one VALUES list typed like the table's columns."""
    columns = [c for c in model.__table__.columns if c.key not in ("application_id", *leave_out)]
    data = []
    for instance in instances:
        row = _row_values(instance, model.__table__)
        data.append(tuple(row[c.key] for c in columns))
    rows = literal_rows([(c.key, c.type) for c in columns], data, name="children")
    return insert(model).from_select(
        ["application_id", *rows.c.keys()],
        select(of.c.id, *rows.c).select_from(of.join(rows, true())),
    )


async def insert_application(
    session: AsyncSession,
    application: Application,
    *,
    materials: Sequence[ApplicationMaterial],
    timeline: Sequence[TimelineEntry],
    lock_grant: bool = False,
) -> bool:
    """Write a new application as built in memory, in its final state, with its materials and
    timeline (at least one entry), in one statement; False when its idempotency key is taken
    (a concurrent duplicate got there first: the unique index makes us wait for it), and then
    nothing is written. Written, the application joins the session as if it had been read.
    ``lock_grant``: the row is inserted under the applicant's lock for the item (as
    :func:`lock_grant` takes it), so the grant-limit check that follows needs no statement for
    it."""
    row = _row_values(application, Application.__table__)
    if lock_grant:
        locked = select(
            _grant_lock(applicant_ref=application.applicant_ref, item_code=application.item_code)
        ).cte("locked")
        into = insert(Application).from_select(
            list(row),
            select(
                *(literal(row[c.key], c.type) for c in Application.__table__.columns)
            ).select_from(locked),
        )
    else:
        into = insert(Application).values(**row)
    created = (
        into.on_conflict_do_nothing(index_elements=["applicant_subject", "idempotency_key"])
        .returning(Application.id)
        .cte("created")
    )
    # The material and timeline rows are selected from ``created``: none when it inserted
    # nothing. (Their foreign keys are checked at the end of the statement, after the
    # application's row is in.)
    statement = _children(TimelineEntry, timeline, of=created, leave_out=("seq",)).returning(
        TimelineEntry.application_id
    )
    if materials:
        statement = statement.add_cte(
            _children(ApplicationMaterial, materials, of=created, leave_out=()).cte("materials")
        )
    if not (await session.execute(statement)).first():
        return False
    make_transient_to_detached(application)
    session.add(application)
    return True


@dataclass(frozen=True)
class Moved:
    """What a change made in one statement tells of the application (for its events)."""

    item_code: str
    department: str
    due_date: date | None


async def move_where(
    session: AsyncSession,
    *,
    application_id: str,
    conditions: Sequence[ColumnElement[bool]],
    changes: Mapping[str, Any],
    timeline: Sequence[TimelineEntry],
) -> Moved | None:
    """Change the application in one statement, if it meets ``conditions``: its columns as
    ``changes`` say (its lock version bumped, as a flush would), with its new timeline entries;
    its item code, department and due date, or None when it did not meet them (nothing
    written). The row is locked as any UPDATE locks it; one changed concurrently is judged as
    it is once that change commits. An instance of it the session has loaded is told what
    changed, as a flush would have told it."""
    moved = (
        update(Application)
        .where(Application.id == application_id, *conditions)
        .values(**changes, lock_version=Application.lock_version + 1)
        .returning(
            Application.id,
            Application.item_code,
            Application.department,
            Application.due_date,
            Application.lock_version,
        )
        .cte("moved")
    )
    added = _children(TimelineEntry, timeline, of=moved, leave_out=("seq",))
    # A SELECT that writes (through its CTEs): it must run in the unit of work's transaction,
    # which a plain SELECT would not begin (``wangban.db.WritesBeginTransaction``).
    await session.connection()
    row = (
        await session.execute(
            select(
                moved.c.item_code, moved.c.department, moved.c.due_date, moved.c.lock_version
            ).add_cte(added.cte("added"))
        )
    ).first()
    if row is not None:
        loaded = session.sync_session.identity_map.get(identity_key(Application, application_id))
        if loaded is not None:
            for name, value in {**changes, "lock_version": row.lock_version}.items():
                set_committed_value(loaded, name, value)
    return (
        None
        if row is None
        else Moved(item_code=row.item_code, department=row.department, due_date=row.due_date)
    )


async def by_idempotency_key(
    session: AsyncSession, *, applicant_subject: str, key: str
) -> Application | None:
    return (
        await session.scalars(
            select(Application).where(
                Application.applicant_subject == applicant_subject,
                Application.idempotency_key == key,
            )
        )
    ).one_or_none()


def _grant_lock(*, applicant_ref: str, item_code: str) -> Any:
    return func.pg_advisory_xact_lock(
        func.hashtextextended(f"grant:{applicant_ref}:{item_code}", 0)
    )


async def lock_grant(session: AsyncSession, *, applicant_ref: str, item_code: str) -> None:
    """Serialise, until the transaction ends, the submissions of one applicant for one
    grant-limited item: of two concurrent ones, the second sees the first once it commits
    (the check that follows is a statement of its own, whose snapshot is taken after the
    lock was granted)."""
    await session.execute(select(_grant_lock(applicant_ref=applicant_ref, item_code=item_code)))


async def open_or_granted(
    session: AsyncSession,
    *,
    applicant_ref: str,
    item_code: str,
    open_states: Sequence[str],
    granted_since: datetime | None,
    exclude_id: str,
) -> Sequence[Application]:
    """The applicant's applications for the item that are still being handled, or that were
    approved (``granted_since``: decided on or after it), oldest first."""
    approved = (
        select(TimelineEntry.seq)
        .where(
            TimelineEntry.application_id == Application.id, TimelineEntry.to_status == "approved"
        )
        .exists()
    )
    granted = and_(Application.status.in_(("approved", "completed", "delivered")), approved)
    if granted_since is not None:
        granted = and_(granted, Application.decided_at >= granted_since)
    rows = await session.scalars(
        select(Application)
        .where(
            Application.applicant_ref == applicant_ref,
            Application.item_code == item_code,
            Application.id != exclude_id,
            Application.kind != "bundle",
            or_(Application.status.in_(open_states), granted),
        )
        .order_by(Application.created_at)
    )
    return rows.all()


async def children(session: AsyncSession, parent_id: str) -> Sequence[Application]:
    return (
        await session.scalars(
            select(Application).where(Application.parent_id == parent_id).order_by(Application.id)
        )
    ).all()


async def applications_of(
    session: AsyncSession, *, applicant_subject: str, limit: int
) -> Sequence[Application]:
    return (
        await session.scalars(
            select(Application)
            .where(
                Application.applicant_subject == applicant_subject,
                Application.kind != "member",
            )
            .order_by(Application.created_at.desc())
            .limit(limit)
        )
    ).all()


async def applications_for_staff(
    session: AsyncSession,
    *,
    department: str | None,
    window: str | None,
    status: str | None,
    limit: int,
) -> Sequence[Application]:
    query = select(Application).where(Application.kind != "bundle")
    if department is not None:
        query = query.where(Application.department == department)
    if window is not None:
        query = query.where(Application.accepting_window == window)
    if status is not None:
        query = query.where(Application.status == status)
    return (await session.scalars(query.order_by(Application.created_at.desc()).limit(limit))).all()


async def overdue_tolerated(session: AsyncSession, *, today: date) -> Sequence[Application]:
    return (
        await session.scalars(
            select(Application)
            .where(
                Application.tolerated_until.is_not(None),
                Application.tolerated_until < today,
                Application.status.in_(
                    ["accepted", "under_review", "correction_requested", "resubmitted", "approved"]
                ),
            )
            .with_for_update(skip_locked=True)
        )
    ).all()


async def tolerated_due_by(session: AsyncSession, *, day: date) -> Sequence[Application]:
    """Open applications with a 容缺 deadline on or before ``day`` not yet reminded."""
    return (
        await session.scalars(
            select(Application)
            .where(
                Application.tolerated_until.is_not(None),
                Application.tolerated_until <= day,
                Application.reminded_at.is_(None),
                Application.status.in_(
                    ["accepted", "under_review", "correction_requested", "resubmitted", "approved"]
                ),
            )
            .with_for_update(skip_locked=True)
        )
    ).all()


# --- timeline and materials ---------------------------------------------------------------------


async def timeline(session: AsyncSession, application_id: str) -> Sequence[TimelineEntry]:
    return (
        await session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.application_id == application_id)
            .order_by(TimelineEntry.seq)
        )
    ).all()


async def materials(session: AsyncSession, application_id: str) -> Sequence[ApplicationMaterial]:
    return (
        await session.scalars(
            select(ApplicationMaterial)
            .where(ApplicationMaterial.application_id == application_id)
            .order_by(ApplicationMaterial.index)
        )
    ).all()


# --- files --------------------------------------------------------------------------------------


async def stored_file(session: AsyncSession, file_id: str) -> StoredFile | None:
    return await session.get(StoredFile, file_id)


async def library(
    session: AsyncSession, *, owner_subject: str, material_name: str | None = None
) -> Sequence[StoredFile]:
    query = select(StoredFile).where(StoredFile.owner_subject == owner_subject)
    if material_name is not None:
        query = query.where(StoredFile.material_name == material_name)
    return (await session.scalars(query.order_by(StoredFile.created_at.desc()))).all()


async def files_of(
    session: AsyncSession, *, owner_subject: str, file_ids: Collection[str]
) -> Sequence[StoredFile]:
    """Those of ``file_ids`` that belong to ``owner_subject``."""
    return (
        await session.scalars(
            select(StoredFile).where(
                StoredFile.owner_subject == owner_subject, StoredFile.id.in_(file_ids)
            )
        )
    ).all()


async def applications_using_file(session: AsyncSession, file_id: str) -> Sequence[Application]:
    return (
        await session.scalars(
            select(Application)
            .join(ApplicationMaterial, ApplicationMaterial.application_id == Application.id)
            .where(
                ApplicationMaterial.evidence_kind == "file",
                ApplicationMaterial.evidence_id == file_id,
            )
        )
    ).all()


# --- ratings ----------------------------------------------------------------------------------


async def insert_rating(session: AsyncSession, values: dict[str, Any]) -> Rating | None:
    """Insert a rating unless the application already has one (then None).

    ``ON CONFLICT DO NOTHING`` on the primary key: of two concurrent ratings of one
    application, the second waits for the first to commit and then inserts nothing.
    """
    inserted = (
        await session.execute(
            insert(Rating)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Rating.application_id])
            .returning(Rating.application_id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        return None
    return await session.get(Rating, inserted)


async def rating_of(session: AsyncSession, application_id: str) -> Rating | None:
    return await session.get(Rating, application_id)


# --- rectifications -------------------------------------------------------------------------


async def rectification_by_id(
    session: AsyncSession, rectification_id: str, *, lock: bool = False
) -> Rectification | None:
    query = select(Rectification).where(Rectification.id == rectification_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def rectification_of_application(
    session: AsyncSession, application_id: str
) -> Rectification | None:
    return (
        await session.execute(
            select(Rectification).where(Rectification.application_id == application_id)
        )
    ).scalar_one_or_none()


async def overdue_rectifications(
    session: AsyncSession, *, today: date, department: str | None
) -> Sequence[Rectification]:
    """Cases not closed whose due date is before ``today``, the most overdue first."""
    query = select(Rectification).where(
        Rectification.status != "closed", Rectification.due_date < today
    )
    if department is not None:
        query = query.where(Rectification.department == department)
    query = query.order_by(Rectification.due_date, Rectification.opened_at, Rectification.id)
    return (await session.execute(query)).scalars().all()


# --- statistics -----------------------------------------------------------------------------

ONLINE_CHANNELS = ("mini_program", "web")
COMPLETED_STATUSES = ("completed", "delivered")


@dataclass(frozen=True)
class ApplicationCounts:
    applications: int
    online: int
    completed: int
    fully_online_completed: int
    visits_0: int
    visits_1: int
    visits_2: int
    visits_unknown: int
    immediate: int
    instant_approvals: int
    completed_with_due_date: int
    completed_on_time: int
    tolerated: int


@dataclass(frozen=True)
class RatingCounts:
    ratings: int
    good: int
    bad: int
    unprompted: int
    score_sum: int


_CHINA_TIME_ZONE: ColumnElement[str] = literal_column("'Asia/Shanghai'")
"""China time (UTC+8 all year since 1991), as PostgreSQL names it; a constant, never input."""


def _local_date(column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """The calendar date, in China, of a timestamptz column."""
    return func.date(func.timezone(_CHINA_TIME_ZONE, column))


def _counted(
    *,
    department: str | None,
    item_code: str | None,
    since: datetime,
    until: datetime,
    region: str | None = None,
) -> list[ColumnElement[bool]]:
    """The applications the statistics count: submitted in ``[since, until)``, not a draft,
    and not a bundle parent (a bundle is counted through its member applications, one per
    deciding department, so it is not counted twice and each department answers for its part).
    """
    conditions: list[ColumnElement[bool]] = [
        Application.submitted_at >= since,
        Application.submitted_at < until,
        Application.status != "draft",
        Application.kind != "bundle",
    ]
    if department is not None:
        conditions.append(Application.department == department)
    if item_code is not None:
        conditions.append(Application.item_code == item_code)
    if region is not None:
        conditions.append(Application.region_code == region)
    return conditions


def _application_count_columns() -> list[ColumnElement[int]]:
    """The counts of :class:`ApplicationCounts`, labelled as its fields, over whatever rows a
    query selects (all counted applications, or a group of them)."""
    online = Application.channel.in_(ONLINE_CHANNELS)
    completed = Application.status.in_(COMPLETED_STATUSES)

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.count().filter(condition)

    return [
        func.count().label("applications"),
        count(online).label("online"),
        count(completed).label("completed"),
        count(and_(completed, online, Application.visits == 0)).label("fully_online_completed"),
        count(Application.visits == 0).label("visits_0"),
        count(Application.visits == 1).label("visits_1"),
        count(Application.visits >= 2).label("visits_2"),
        count(Application.visits.is_(None)).label("visits_unknown"),
        count(Application.committed_days == 0).label("immediate"),
        count(and_(Application.auto_approval.is_(True), Application.decided_by == "auto")).label(
            "instant_approvals"
        ),
        count(
            and_(
                completed, Application.completed_at.is_not(None), Application.due_date.is_not(None)
            )
        ).label("completed_with_due_date"),
        count(
            and_(
                completed,
                Application.due_date.is_not(None),
                _local_date(Application.completed_at) <= Application.due_date,
            )
        ).label("completed_on_time"),
        count(
            and_(
                Application.accepted_at.is_not(None),
                or_(
                    Application.tolerated_until.is_not(None),
                    select(ApplicationMaterial.id)
                    .where(
                        ApplicationMaterial.application_id == Application.id,
                        ApplicationMaterial.status == "tolerated",
                    )
                    .exists(),
                ),
            )
        ).label("tolerated"),
    ]


async def application_counts(
    session: AsyncSession,
    *,
    department: str | None,
    item_code: str | None,
    since: datetime,
    until: datetime,
) -> ApplicationCounts:
    """The counts behind 三率一数 and the other application figures, in one scan.

    The formulas that use them are documented in :mod:`intake_service.statistics`.
    """
    query = select(*_application_count_columns()).where(
        *_counted(department=department, item_code=item_code, since=since, until=until)
    )
    row = (await session.execute(query)).one()
    return ApplicationCounts(**row._asdict())


def _rating_count_columns() -> list[ColumnElement[int]]:
    """The counts of :class:`RatingCounts`, labelled as its fields."""

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.count().filter(condition)

    return [
        func.count().label("ratings"),
        count(Rating.score >= 4).label("good"),
        count(Rating.score <= 2).label("bad"),
        count(Rating.prompted.is_(False)).label("unprompted"),
        func.coalesce(func.sum(Rating.score), 0).label("score_sum"),
    ]


async def rating_counts(
    session: AsyncSession,
    *,
    department: str | None,
    item_code: str | None,
    since: datetime,
    until: datetime,
) -> RatingCounts:
    """Counts of the ratings of the counted applications (whenever the rating was given)."""
    query = (
        select(*_rating_count_columns())
        .select_from(Rating)
        .join(Application, Application.id == Rating.application_id)
        .where(*_counted(department=department, item_code=item_code, since=since, until=until))
    )
    row = (await session.execute(query)).one()
    return RatingCounts(**row._asdict())


async def handling_periods(
    session: AsyncSession,
    *,
    department: str | None,
    item_code: str | None,
    since: datetime,
    until: datetime,
) -> Sequence[tuple[datetime, datetime]]:
    """(accepted_at, completed_at) of the counted applications that are completed."""
    query = select(Application.accepted_at, Application.completed_at).where(
        *_counted(department=department, item_code=item_code, since=since, until=until),
        Application.status.in_(COMPLETED_STATUSES),
        Application.accepted_at.is_not(None),
        Application.completed_at.is_not(None),
    )
    pairs: list[tuple[datetime, datetime]] = []
    for accepted, completed in (await session.execute(query)).all():
        assert accepted is not None and completed is not None  # the query asks for both
        pairs.append((accepted, completed))
    return pairs


@dataclass(frozen=True)
class MonthlyCounts:
    """The counts of one department's applications submitted in one month (China time)."""

    department: str
    month: str
    """``YYYY-MM``."""
    applications: ApplicationCounts
    visits_total: int
    """Σ 到现场次数 over the applications with a visit count."""
    ratings: RatingCounts


_MONTH_FORMAT: ColumnElement[str] = literal_column("'YYYY-MM'")
"""A constant, never input: the SELECT and the GROUP BY must be the same expression."""


def _local_month(column: SQLColumnExpression[Any]) -> ColumnElement[str]:
    """The month (``YYYY-MM``), in China, of a timestamptz column."""
    return func.to_char(func.timezone(_CHINA_TIME_ZONE, column), _MONTH_FORMAT)


async def monthly_counts(
    session: AsyncSession,
    *,
    department: str | None,
    region: str | None,
    since: datetime,
    until: datetime,
) -> list[MonthlyCounts]:
    """The counts of :func:`application_counts` and :func:`rating_counts` per department and
    month of submission, in two grouped scans; a department and month without applications has
    no row. By department, then month."""
    counted = _counted(
        department=department, item_code=None, since=since, until=until, region=region
    )
    month = _local_month(Application.submitted_at).label("month")
    apps = await session.execute(
        select(
            Application.department,
            month,
            *_application_count_columns(),
            func.coalesce(func.sum(Application.visits), 0).label("visits_total"),
        )
        .where(*counted)
        .group_by(Application.department, month)
        .order_by(Application.department, month)
    )
    rated = await session.execute(
        select(Application.department, month, *_rating_count_columns())
        .select_from(Rating)
        .join(Application, Application.id == Rating.application_id)
        .where(*counted)
        .group_by(Application.department, month)
    )
    ratings = {
        (row.department, row.month): RatingCounts(
            **{k: v for k, v in row._asdict().items() if k not in ("department", "month")}
        )
        for row in rated
    }
    no_ratings = RatingCounts(ratings=0, good=0, bad=0, unprompted=0, score_sum=0)
    found: list[MonthlyCounts] = []
    for row in apps:
        values = row._asdict()
        key = (values.pop("department"), values.pop("month"))
        visits_total = int(values.pop("visits_total"))
        found.append(
            MonthlyCounts(
                department=key[0],
                month=key[1],
                applications=ApplicationCounts(**values),
                visits_total=visits_total,
                ratings=ratings.get(key, no_ratings),
            )
        )
    return found


async def keep_early_certificate(
    session: AsyncSession, *, application_id: str, type_name: str, issued_at: datetime
) -> None:
    await session.execute(
        insert(EarlyCertificate)
        .values(application_id=application_id, type_name=type_name, issued_at=issued_at)
        .on_conflict_do_nothing(index_elements=["application_id"])
    )


async def take_early_certificate(
    session: AsyncSession, application_id: str
) -> EarlyCertificate | None:
    """The certificate kept for this application, removed as it is taken."""
    row = (
        await session.execute(
            delete(EarlyCertificate)
            .where(EarlyCertificate.application_id == application_id)
            .returning(EarlyCertificate.type_name, EarlyCertificate.issued_at)
        )
    ).first()
    if row is None:
        return None
    return EarlyCertificate(
        application_id=application_id, type_name=row.type_name, issued_at=row.issued_at
    )


# --- rectification list ---------------------------------------------------------------------


async def rectifications_with_ratings(
    session: AsyncSession,
    *,
    department: str | None,
    status: str | None,
    limit: int,
) -> Sequence[tuple[Rectification, Rating, str, str]]:
    """Cases with the rating that opened them and their application's item (code, name):
    those still to handle first, the earliest due first, then the closed ones, the latest
    closed first; all departments' when ``department`` is None."""
    query = (
        select(Rectification, Rating, Application.item_code, Application.item_name)
        .join(Rating, Rating.application_id == Rectification.application_id)
        .join(Application, Application.id == Rectification.application_id)
    )
    if department is not None:
        query = query.where(Rectification.department == department)
    if status is not None:
        query = query.where(Rectification.status == status)
    closed = Rectification.status == "closed"
    query = query.order_by(
        closed,
        # Cases to handle have no closed_at: they tie here and go by their deadline.
        Rectification.closed_at.desc().nulls_last(),
        Rectification.due_date,
        Rectification.opened_at,
        Rectification.id,
    ).limit(limit)
    rows = await session.execute(query)
    return [(r[0], r[1], r[2], r[3]) for r in rows]
