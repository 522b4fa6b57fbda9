"""A window clerk files and accepts an application for an applicant who came to the counter."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from intake_service import applying
from intake_service.api.deps import APPLY_ERRORS, Clerk, Shared
from intake_service.api.views import application_out
from intake_service.applications.errors import ApplicantNotVerified, WindowIntakeIncomplete
from intake_service.schemas import ApplicationOut, WindowApplicationIn
from wangban.db import UnitOfWork
from wangban.errors import Forbidden, problem_responses

router = APIRouter(prefix="/staff", tags=["window and review"])


@router.post(
    "/applications",
    status_code=201,
    summary="A window clerk files and accepts an application for an applicant (全城通办)",
    description="The applicant is verified first (``verification``): by the population "
    "register (name and ID number) or by the clerk's statement of the ID-card reading or face "
    "check done at the counter. Every lookup then names the clerk. A form or materials that "
    "do not complete the application answer one problem whichever record was missing.",
    responses=problem_responses(*APPLY_ERRORS, ApplicantNotVerified, WindowIntakeIncomplete),
)
async def apply_at_window(
    body: WindowApplicationIn,
    session: UnitOfWork,
    clerk: Clerk,
    runtime: Shared,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ApplicationOut:
    if not clerk.department or not clerk.region:
        raise Forbidden("窗口工作人员的身份中缺少窗口或所在区域")
    applied = await applying.apply_at_window(
        session,
        services=runtime,
        body=body,
        clerk=clerk,
        window=clerk.department,
        region=clerk.region,
        key=idempotency_key,
    )
    if not applied.created:
        response.status_code = 200  # the same request again: the same application
    return await application_out(
        session,
        applied.application,
        runtime.keys,
        timeline=applied.timeline,
        materials=applied.materials,
    )
