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

from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import repository
from wangban.calendar import CHINA_TZ
from wangban.monthly import (
    MONTH,
    Figure,
    InvalidPeriod,
    figures_table,
    first_days,
    next_month,
)

__all__ = [
    "MONTH",
    "CatalogueFigures",
    "Figure",
    "InvalidPeriod",
    "MonthlyCatalogue",
    "monthly_csv",
    "monthly_statistics",
]


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
    for first in first_days(start_month, end_month):
        if datetime.combine(first, time.min, tzinfo=CHINA_TZ) > now:
            break  # a month that has not begun has no catalogue yet
        month_end = datetime.combine(next_month(first), time.min, tzinfo=CHINA_TZ)
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
    return figures_table(
        leading=["部门", "月份", "事项数"],
        figure_names=FIGURE_NAMES,
        rows=(([row.department, row.month, str(row.items)], vars(row)) for row in figures.rows),
    )
