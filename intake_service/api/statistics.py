"""三率一数 and the other figures, for managers and auditors."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter

from intake_service import statistics
from intake_service.api.deps import Manager, Shared
from wangban.auth import AUDITOR
from wangban.db import UnitOfWork
from wangban.errors import problem_responses

router = APIRouter(prefix="/staff", tags=["window and review"])


@router.get(
    "/statistics",
    summary="三率一数 and the other figures, per department, item and period",
    responses=problem_responses(statistics.InvalidPeriod),
)
async def get_statistics(
    session: UnitOfWork,
    member: Manager,
    runtime: Shared,
    start: date,
    end: date,
    department: str | None = None,
    item_code: str | None = None,
) -> statistics.Statistics:
    if not member.has_any_role(AUDITOR):
        department = member.department or "-"  # a department sees its own figures
    figures = await statistics.statistics(
        session,
        department=department,
        item_code=item_code,
        start=start,
        end=end,
        calendar=runtime.calendar,
    )
    return figures
