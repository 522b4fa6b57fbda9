"""Every query of the approval service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, delete, exists, literal, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service.models import (
    CalendarDay,
    CalendarYear,
    Case,
    CaseAction,
    Decision,
    EarlyAcceptance,
    ItemVersionCopy,
)
from wangban.db import literal_rows


async def item_version(session: AsyncSession, version_id: str) -> ItemVersionCopy | None:
    return await session.get(ItemVersionCopy, version_id)


async def save_item_version(session: AsyncSession, values: dict[str, object]) -> None:
    await session.execute(
        insert(ItemVersionCopy)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["version_id"])
    )


async def case(session: AsyncSession, application_id: str, *, lock: bool = False) -> Case | None:
    query = select(Case).where(Case.application_id == application_id)
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


async def case_exists(session: AsyncSession, application_id: str) -> bool:
    return bool(await session.scalar(select(exists().where(Case.application_id == application_id))))


_LOGGED = ("at", "actor", "action", "comment")


async def open_case_once(
    session: AsyncSession,
    *,
    case: Mapping[str, Any],
    actions: Sequence[Mapping[str, Any]],
    decision: Mapping[str, Any] | None = None,
) -> bool:
    """The case in the state it opens in, its action log (in the order given) and its decision,
    in one statement that writes them only if the application has no case yet (an event
    redelivered, or the same submission under another envelope id, changes nothing). Returns
    whether it wrote them.

    One statement rather than a read and three inserts: the case (``INSERT … ON CONFLICT DO
    NOTHING``) is a common table expression the decision and the actions are selected from, so
    they exist exactly when the case row was inserted here."""
    opened = (
        insert(Case)
        .values(**case)
        .on_conflict_do_nothing(index_elements=["application_id"])
        .returning(Case.application_id)
        .cte("opened")
    )
    log = literal_rows(
        [("n", Integer()), *((name, CaseAction.__table__.c[name].type) for name in _LOGGED)],
        [(n, *(action[name] for name in _LOGGED)) for n, action in enumerate(actions)],
        name="log",
    )
    statement = (
        insert(CaseAction)
        .from_select(
            ["application_id", *_LOGGED],
            select(opened.c.application_id, *(log.c[name] for name in _LOGGED))
            .select_from(opened.join(log, true()))
            .order_by(log.c.n),  # seq numbers the log in this order
        )
        .returning(CaseAction.application_id)
        .add_cte(opened)
    )
    if decision is not None:
        recorded = {k: v for k, v in decision.items() if k != "application_id"}
        decided = (
            insert(Decision)
            .from_select(
                ["application_id", *recorded],
                select(
                    opened.c.application_id,
                    *(literal(v, type_=Decision.__table__.c[k].type) for k, v in recorded.items()),
                ),
            )
            .cte("decided")
        )
        statement = statement.add_cte(decided)
    return (await session.execute(statement)).first() is not None


async def queue(
    session: AsyncSession, *, department: str, status: str | None, limit: int
) -> Sequence[Case]:
    query = select(Case).where(Case.department == department)
    if status is not None:
        query = query.where(Case.status == status)
    return (
        await session.scalars(query.order_by(Case.due_date, Case.submitted_at).limit(limit))
    ).all()


async def open_cases_with_deadline(session: AsyncSession) -> Sequence[Case]:
    return (
        await session.scalars(
            select(Case)
            .where(Case.status == "open", Case.due_date.is_not(None), Case.overdue_at.is_(None))
            .with_for_update(skip_locked=True)
        )
    ).all()


async def decisions(session: AsyncSession, application_id: str) -> Sequence[Decision]:
    return (
        await session.scalars(
            select(Decision)
            .where(Decision.application_id == application_id)
            .order_by(Decision.decided_at)
        )
    ).all()


async def actions(session: AsyncSession, application_id: str) -> Sequence[CaseAction]:
    return (
        await session.scalars(
            select(CaseAction)
            .where(CaseAction.application_id == application_id)
            .order_by(CaseAction.seq)
        )
    ).all()


async def calendar_days(session: AsyncSession) -> Sequence[CalendarDay]:
    return (await session.scalars(select(CalendarDay).order_by(CalendarDay.day))).all()


async def calendar_years(session: AsyncSession) -> Sequence[CalendarYear]:
    return (await session.scalars(select(CalendarYear).order_by(CalendarYear.year))).all()


async def keep_early_acceptance(
    session: AsyncSession, *, application_id: str, event: dict[str, Any], at: datetime
) -> None:
    await session.execute(
        insert(EarlyAcceptance)
        .values(application_id=application_id, event=event, received_at=at)
        .on_conflict_do_nothing(index_elements=["application_id"])
    )


async def take_early_acceptance(
    session: AsyncSession, application_id: str
) -> dict[str, Any] | None:
    """The acceptance kept for this application, removed as it is taken."""
    event: dict[str, Any] | None = (
        await session.execute(
            delete(EarlyAcceptance)
            .where(EarlyAcceptance.application_id == application_id)
            .returning(EarlyAcceptance.event)
        )
    ).scalar_one_or_none()
    return event


async def recent_decided_cases(
    session: AsyncSession, *, item_code: str, department: str | None, limit: int
) -> list[tuple[Case, str | None]]:
    """The item's most recently decided (approved or denied) cases, newest first, each with
    the outcome 秒批 gave it if it was asked (for the catalogue's replay of proposed rules)."""
    query = select(Case).where(
        Case.item_code == item_code,
        Case.status.in_(("approved", "denied")),
        Case.decided_at.is_not(None),
    )
    if department is not None:
        query = query.where(Case.department == department)
    decided = (await session.scalars(query.order_by(Case.decided_at.desc()).limit(limit))).all()
    if not decided:
        return []
    autos = await session.execute(
        select(Decision.application_id, Decision.outcome).where(
            Decision.application_id.in_([c.application_id for c in decided]),
            Decision.kind == "auto",
        )
    )
    auto_of = {application_id: outcome for application_id, outcome in autos.all()}
    return [(case, auto_of.get(case.application_id)) for case in decided]
