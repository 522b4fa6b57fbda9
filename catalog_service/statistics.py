"""The catalogue's figures per department and month, each with its numerator and denominator.

A month's figures describe the catalogue as it stood at the month's end (or now, for the
current month): the item versions published by then and neither superseded nor withdrawn yet.
Months that have not begun have no figures. The applications' figures of the same departments
and months (即办率 of applications, 按时办结率, 好评率, 跑动次数, 秒批率) are intake's; the
staff console shows the two side by side.

- 即办率 (items): 即办件 (committed 0 working days) ÷ items.
- 网办率 (items): items offered online (channel 网上 or 掌上) ÷ items.
- 全程网办率 (网上全流程办理率): items offered online at depth IV ÷ items offered online.
- 秒批率 (items): 秒批 items ÷ items.
- 时限压缩率: Σ (法定 − 承诺) ÷ Σ 法定, over the items with a legal time limit above 0 and a
  committed one (a day-weighted figure: Anyang's "承诺办结时间在法定时限的基础上压缩 95.05%").

A value is None when its denominator is 0, never a made-up 0 or 100 %.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import repository
from catalog_service.importer import escape_formula
from wangban.calendar import CHINA_TZ
from wangban.errors import ValidationFailed

__all__ = [
    "CatalogueFigures",
    "Figure",
    "InvalidPeriod",
    "MonthlyCatalogue",
    "monthly_csv",
    "monthly_statistics",
]

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
"""``YYYY-MM``."""

MAX_MONTHS = 120
"""Ten years: a longer period is a mistake."""


class InvalidPeriod(ValidationFailed):
    type_slug = "invalid-statistics-period"
    title = "统计期间有误"


@dataclass(frozen=True)
class Figure:
    numerator: int
    denominator: int
    value: float | None
    """numerator ÷ denominator; None when the denominator is 0."""

    @classmethod
    def of(cls, numerator: int, denominator: int) -> Figure:
        return cls(numerator, denominator, numerator / denominator if denominator else None)


@dataclass(frozen=True)
class CatalogueFigures:
    department: str
    month: str
    """``YYYY-MM``: the catalogue at that month's end (now, for the current month)."""
    items: int
    immediate: Figure
    """即办率 of items."""
    online: Figure
    """网办率 of items."""
    fully_online: Figure
    """全程网办率: depth IV ÷ offered online."""
    auto_approval: Figure
    """秒批率 of items."""
    compression: Figure
    """时限压缩率: days saved ÷ legal days (the committed days are the difference)."""


@dataclass(frozen=True)
class MonthlyCatalogue:
    start_month: str
    end_month: str
    months: list[str]
    """Every month of the period that has begun, in order."""
    department: str | None
    """The department the figures are limited to; None for all (auditors)."""
    rows: list[CatalogueFigures]
    """By department, then month."""


def _first_days(start_month: str, end_month: str) -> list[date]:
    first, last = MONTH.match(start_month), MONTH.match(end_month)
    if first is None or last is None:
        raise InvalidPeriod("统计月份应写作“年-月”，例如 2026-01")
    start = date(int(first[1]), int(first[2]), 1)
    end = date(int(last[1]), int(last[2]), 1)
    if end < start:
        raise InvalidPeriod("统计截止月份不能早于起始月份")
    if (end.year - start.year) * 12 + end.month - start.month >= MAX_MONTHS:
        raise InvalidPeriod("统计期间不能超过十年")
    days, day = [], start
    while day <= end:
        days.append(day)
        day = _next_month(day)
    return days


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=31)).replace(day=1)


async def monthly_statistics(
    session: AsyncSession,
    *,
    department: str | None,
    region: str | None,
    start_month: str,
    end_month: str,
    now: datetime,
) -> MonthlyCatalogue:
    """The catalogue's figures per department at the end of each month from ``start_month`` to
    ``end_month`` (``YYYY-MM``, China time, inclusive)."""
    snapshots = []
    for first in _first_days(start_month, end_month):
        if datetime.combine(first, time.min, tzinfo=CHINA_TZ) > now:
            break  # a month that has not begun has no catalogue yet
        month_end = datetime.combine(_next_month(first), time.min, tzinfo=CHINA_TZ)
        snapshots.append((f"{first:%Y-%m}", min(month_end, now)))
    counted = await repository.monthly_catalogue_counts(
        session, snapshots=snapshots, department=department, region=region
    )
    return MonthlyCatalogue(
        start_month=start_month,
        end_month=end_month,
        months=[month for month, _ in snapshots],
        department=department,
        rows=[
            CatalogueFigures(
                department=c.department,
                month=c.month,
                items=c.items,
                immediate=Figure.of(c.immediate, c.items),
                online=Figure.of(c.online, c.items),
                fully_online=Figure.of(c.fully_online, c.online),
                auto_approval=Figure.of(c.auto_approval, c.items),
                compression=Figure.of(c.saved_days, c.legal_days),
            )
            for c in counted
        ],
    )


FIGURE_NAMES = {
    "immediate": "即办率",
    "online": "网办率",
    "fully_online": "全程网办率",
    "auto_approval": "秒批率",
    "compression": "时限压缩率",
}
"""The CSV's names of the figures of :class:`CatalogueFigures`, in its columns' order."""


def monthly_csv(figures: MonthlyCatalogue) -> str:
    """The figures as a table: one row per department and month; each figure as its numerator,
    its denominator and its value (a percentage with two decimals)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    header = ["部门", "月份", "事项数"]
    for name in FIGURE_NAMES.values():
        header += [f"{name}分子", f"{name}分母", name]
    writer.writerow(header)
    for row in figures.rows:
        cells = [escape_formula(row.department), row.month, str(row.items)]
        for key in FIGURE_NAMES:
            figure: Figure = getattr(row, key)
            value = "" if figure.value is None else f"{figure.value * 100:.2f}%"
            cells += [str(figure.numerator), str(figure.denominator), value]
        writer.writerow(cells)
    return buffer.getvalue()
