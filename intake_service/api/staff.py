"""Staff's routes: the applications a staff member may see, 受理 and 不予受理."""

from __future__ import annotations

from fastapi import APIRouter

from intake_service import repository
from intake_service.api.deps import Shared, StaffMember, readable_for_acceptance
from intake_service.api.views import application_out, staff_summary
from intake_service.applications import lifecycle
from intake_service.applications.errors import ApplicationNotFound, TransitionNotAllowed
from intake_service.schemas import ApplicationOut, ReasonIn, StaffApplicationSummary
from wangban.auth import AUDITOR, REVIEWER
from wangban.db import UnitOfWork
from wangban.errors import problem_responses

router = APIRouter(prefix="/staff", tags=["window and review"])


@router.get("/applications", summary="Applications this staff member may see")
async def staff_applications(
    session: UnitOfWork, member: StaffMember, runtime: Shared, status: str | None = None
) -> list[StaffApplicationSummary]:
    if member.has_any_role(AUDITOR):
        rows = await repository.applications_for_staff(
            session, department=None, window=None, status=status, limit=200
        )
    elif member.has_any_role(REVIEWER):
        rows = await repository.applications_for_staff(
            session, department=member.department or "-", window=None, status=status, limit=200
        )
    else:
        rows = await repository.applications_for_staff(
            session, department=None, window=member.department or "-", status=status, limit=200
        )
    return [staff_summary(r, runtime.keys.cipher) for r in rows]


@router.get(
    "/applications/{application_id}",
    summary="One application, for the staff handling it: its form, and each material with "
    "where it came from (uploaded, or which department's data replaced it)",
    description="The deciding department's reviewers and the window that took it in; "
    "auditors read the lists (masked), not applicants' forms.",
    responses=problem_responses(ApplicationNotFound),
)
async def staff_application(
    application_id: str, session: UnitOfWork, member: StaffMember, runtime: Shared
) -> ApplicationOut:
    application = await readable_for_acceptance(session, member, application_id, lock=False)
    return await application_out(session, application, runtime.keys)


@router.post(
    "/applications/{application_id}/accept",
    summary="受理",
    responses=problem_responses(ApplicationNotFound, TransitionNotAllowed),
)
async def accept(
    application_id: str, session: UnitOfWork, member: StaffMember, runtime: Shared
) -> ApplicationOut:
    application = await readable_for_acceptance(session, member, application_id)
    await lifecycle.accept(
        session,
        application=application,
        actor_kind="staff",
        actor=member.subject,
        calendar=runtime.calendar,
    )
    return await application_out(session, application, runtime.keys)


@router.post(
    "/applications/{application_id}/not-accept",
    summary="不予受理, with the reason",
    responses=problem_responses(ApplicationNotFound, TransitionNotAllowed),
)
async def not_accept(
    application_id: str,
    body: ReasonIn,
    session: UnitOfWork,
    member: StaffMember,
    runtime: Shared,
) -> ApplicationOut:
    application = await readable_for_acceptance(session, member, application_id)
    await lifecycle.not_accept(
        session, application=application, actor=member.subject, reason=body.reason
    )
    return await application_out(session, application, runtime.keys)
