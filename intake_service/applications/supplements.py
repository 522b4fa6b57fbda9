"""Materials supplied after submission: 容缺 (tolerated as missing at acceptance, due by a
deadline in working days, reminded before it and terminated after it) and 补正 (requested by the
reviewer: supplying them resubmits the application)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import repository
from intake_service.applications.creation import MaterialChoice
from intake_service.applications.errors import MaterialsIncomplete, TransitionNotAllowed
from intake_service.applications.lifecycle import complete_if_ready, has_outstanding_materials
from intake_service.applications.states import FINAL, ActorKind, move
from intake_service.events import (
    ApplicationSupplemented,
    ApplicationTerminated,
    SupplementReminderDue,
    outbox,
)
from intake_service.models import Application, ApplicationMaterial
from wangban.calendar import WorkingDayCalendar

OUTSTANDING_MATERIAL_STATES = frozenset({"missing", "tolerated"})
"""A material not yet supplied: tolerated at acceptance (容缺) or still missing."""


def _open_to_supplements(application: Application) -> bool:
    return application.status not in FINAL and application.status not in ("completed", "denied")


def may_supplement(application: Application, materials: Sequence[ApplicationMaterial]) -> bool:
    """Whether the applicant has something to supply now: a correction was asked for (补正), or
    a material tolerated at acceptance is still outstanding (补齐) while the application is open."""
    if application.status == "correction_requested":
        return True
    return _open_to_supplements(application) and any(
        m.status in OUTSTANDING_MATERIAL_STATES for m in materials
    )


async def supplement(
    session: AsyncSession,
    *,
    application: Application,
    choices: Sequence[MaterialChoice],
    actor_kind: ActorKind,
    actor: str,
    now: datetime | None = None,
) -> Application:
    """补齐 (容缺 materials) or 补正 (after a correction request): attach files; after a
    correction request the application is resubmitted; when nothing tolerated is left and the
    decision was an approval held for it, the application completes."""
    now = now or datetime.now(UTC)
    rows = {r.index: r for r in await repository.materials(session, application.id)}
    owned = {
        f.id: f.material_name
        for f in await repository.library(session, owner_subject=application.applicant_subject)
    }
    names = []
    for choice in choices:
        row = rows.get(choice.index)
        if row is None:
            raise MaterialsIncomplete(f"没有第 {choice.index + 1} 项材料")
        if choice.file_id is None or choice.file_id not in owned:
            raise MaterialsIncomplete(f"材料「{row.name}」所选文件不存在")
        row.status = "uploaded" if owned[choice.file_id] == row.name else "reused"
        row.evidence_kind, row.evidence_id = "file", choice.file_id
        names.append(row.name)
    if not names:
        raise MaterialsIncomplete("请至少提交一项材料")
    # ``tolerated_until`` stays: that the application was accepted with missing materials is
    # history the statistics count (容缺受理), even after they arrived.
    complete = not any(
        r.status in OUTSTANDING_MATERIAL_STATES and r.required for r in rows.values()
    )
    if application.status == "correction_requested":
        await move(
            session, application, to="resubmitted", actor_kind=actor_kind, actor=actor, at=now
        )
    elif not _open_to_supplements(application):
        raise TransitionNotAllowed("申请已结束，无需再补充材料")
    await session.flush()
    await outbox.publish(
        session,
        ApplicationSupplemented(
            application_id=application.id, at=now.isoformat(), materials=names, complete=complete
        ),
    )
    if complete and application.status == "approved":
        await complete_if_ready(session, application=application, now=now)
    return application


async def terminate_overdue(
    session: AsyncSession, *, today: date, now: datetime | None = None
) -> list[str]:
    """End applications whose 容缺 materials were not supplied by their deadline."""
    now = now or datetime.now(UTC)
    ended = []
    for application in await repository.overdue_tolerated(session, today=today):
        if not await has_outstanding_materials(session, application):
            continue
        reason = f"容缺材料未在 {application.tolerated_until} 前补齐，办理终止"
        await move(
            session,
            application,
            to="terminated",
            actor_kind="system",
            actor="intake",
            at=now,
            note=reason,
        )
        await outbox.publish(
            session,
            ApplicationTerminated(application_id=application.id, at=now.isoformat(), reason=reason),
        )
        ended.append(application.id)
    return ended


REMIND_WORKING_DAYS_BEFORE = 2
"""容缺 reminders go out this many working days before the deadline (and once only)."""


async def remind_due(
    session: AsyncSession,
    *,
    today: date,
    calendar: WorkingDayCalendar,
    now: datetime | None = None,
) -> list[str]:
    """Announce applications whose 容缺 deadline is near, once each (notify sends the reminder)."""
    now = now or datetime.now(UTC)
    horizon = calendar.add_working_days(today, REMIND_WORKING_DAYS_BEFORE)
    reminded = []
    for application in await repository.tolerated_due_by(session, day=horizon):
        outstanding = [
            r.name
            for r in await repository.materials(session, application.id)
            if r.status == "tolerated"
        ]
        if not outstanding or application.tolerated_until is None:
            continue
        application.reminded_at = now
        await outbox.publish(
            session,
            SupplementReminderDue(
                application_id=application.id,
                tolerated_until=application.tolerated_until.isoformat(),
                materials=outstanding,
            ),
        )
        reminded.append(application.id)
    await session.flush()
    return reminded
