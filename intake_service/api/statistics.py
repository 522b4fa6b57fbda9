"""三率一数 and the other figures, for managers and auditors."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response

from intake_service import statistics
from intake_service.api.deps import Manager, Shared
from wangban.auth import AUDITOR
from wangban.db import ReadSession, UnitOfWork
from wangban.errors import problem_responses
from wangban.monthly import csv_attachment, scope_of

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


Month = Annotated[str, Query(pattern=statistics.MONTH.pattern, examples=["2026-01"])]


@router.get(
    "/statistics/monthly",
    summary="三率一数 and the other figures per department and month, each with its numerator "
    "and denominator",
    responses=problem_responses(statistics.InvalidPeriod),
)
async def get_monthly_statistics(
    session: ReadSession,
    member: Manager,
    start_month: Month,
    end_month: Month,
    department: str | None = None,
) -> statistics.MonthlyStatistics:
    department, region = scope_of(member, department)
    return await statistics.monthly_statistics(
        session,
        department=department,
        region=region,
        start_month=start_month,
        end_month=end_month,
    )


@router.get(
    "/statistics/monthly.csv",
    summary="The figures per department and month as a CSV table (UTF-8 with a BOM, for Excel)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **problem_responses(statistics.InvalidPeriod),
    },
)
async def export_monthly_statistics(
    session: ReadSession,
    member: Manager,
    start_month: Month,
    end_month: Month,
    department: str | None = None,
) -> Response:
    department, region = scope_of(member, department)
    figures = await statistics.monthly_statistics(
        session,
        department=department,
        region=region,
        start_month=start_month,
        end_month=end_month,
    )
    return csv_attachment(
        statistics.monthly_csv(figures),
        filename=f"applications-{start_month}-{end_month}.csv",
    )
