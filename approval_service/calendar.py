"""The working-day calendar approval counts in: chinesecalendar, the settings' override file,
and the override table an operator loads from the State Council's yearly notice
(``wangban calendar load``). Rebuilt at most once a minute per process, so a loaded notice
takes effect without a restart."""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import repository
from approval_service.models import CalendarDay, CalendarYear
from wangban.calendar import WorkingDayCalendar, calendar_from_rows, load_notice_file
from wangban.settings import Settings

logger = logging.getLogger(__name__)

REFRESH_S = 60.0
_cached: tuple[float, WorkingDayCalendar] | None = None


async def calendar_for(session: AsyncSession, settings: Settings) -> WorkingDayCalendar:
    global _cached
    now = time.monotonic()
    if _cached is not None and now - _cached[0] < REFRESH_S:
        return _cached[1]
    rows: dict[date, bool] = {}
    years: set[int] = set()
    if settings.calendar_overrides_path is not None:
        file_days, file_years = load_notice_file(settings.calendar_overrides_path)
        rows.update(file_days)
        years |= file_years
    for day in await repository.calendar_days(session):
        rows[day.day] = day.working  # the table wins over the file: it is the operator's latest
    years |= {y.year for y in await repository.calendar_years(session)}
    try:
        calendar = calendar_from_rows(rows.items(), complete_years=years)
    except ValueError:
        # A year declared complete without its days: count it as unknown (deadlines marked
        # provisional) rather than stop deciding cases.
        logger.exception("calendar override table is inconsistent; using it without complete years")
        calendar = calendar_from_rows(rows.items(), complete_years=())
    _cached = (now, calendar)
    return calendar


def forget_cached_calendar() -> None:
    global _cached
    _cached = None


async def load_notice(session: AsyncSession, *, path: Path) -> tuple[int, list[int]]:
    """Load a notice file into the override table (replacing the days of the years it
    declares complete); returns the number of days and the years."""
    days, years = load_notice_file(path)
    for year in years:
        await session.execute(
            delete(CalendarDay).where(
                CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31)
            )
        )
        await session.merge(CalendarYear(year=year, source=path.name, loaded_at=datetime.now(UTC)))
    for day, working in days.items():
        await session.merge(CalendarDay(day=day, working=working, note=path.name))
    await session.flush()
    forget_cached_calendar()
    return len(days), sorted(years)
