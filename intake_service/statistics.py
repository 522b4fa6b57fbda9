"""三率一数 and the other figures of the articles, per department, item and period.

Which applications count (the denominator "all" below): those **submitted** on a China date in
``[start, end]`` — so never a draft — of the department and item asked for (all when None),
except bundle parents (一件事): a bundle counts through its member applications, one per
deciding department, so that it is not counted twice and each department answers for its own
part. "Completed" means status ``completed`` (办结) or ``delivered`` (已送达); "online" means
channel ``mini_program`` or ``web``.

Counts come from SQL (:mod:`intake_service.repository`, one scan of the applications and
one of their ratings); the average handling time is computed here over the fetched
(accepted, completed) pairs because it needs the working-day calendar. A ratio is None when its
denominator is 0, never a made-up 0 or 100 %.

网上全流程办理率 (items fully online ÷ items in the online hall) is a property of the
catalogue, not of applications: the catalog service computes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import repository
from wangban.calendar import CHINA_TZ, WorkingDayCalendar, china_date
from wangban.monthly import (
    MONTH,
    Figure,
    InvalidPeriod,
    figures_table,
    month_range,
    months_of,
    percentage,
)

__all__ = [
    "MONTH",
    "Figure",
    "InvalidPeriod",
    "MonthlyFigures",
    "MonthlyStatistics",
    "Statistics",
    "monthly_csv",
    "monthly_statistics",
    "statistics",
]

MAX_PERIOD_DAYS = 3660
"""About ten years: a longer period is a mistake, and would scan everything."""


@dataclass(frozen=True)
class Statistics:
    department: str | None
    item_code: str | None
    start: date
    end: date

    applications: int
    """申办件数: all counted applications (the "all" of the ratios)."""

    # 上网办理率 = 网上申办件数 ÷ 申办件数
    online_applications: int
    """网上申办件数: submitted through an online channel (mini-program or web)."""
    online_application_rate: float | None
    """上网办理率."""

    # 网上办结率 = 全程网办且办结件数 ÷ 申办件数
    completed: int
    """办结件数: status completed or delivered."""
    fully_online_completed: int
    """全程网办办结件数: completed, online channel, and no visit (visits == 0)."""
    online_completion_rate: float | None
    """网上办结率."""

    # 到现场次数 distribution; 零跑动率 = visits 0 ÷ 申办件数; 最多跑一次率 = visits ≤ 1 ÷ 申办件数
    visits_0: int
    visits_1: int
    visits_2: int
    """Two visits (or more, which the catalogue does not allow)."""
    visits_unknown: int
    """Applications with no visit count; they count in neither share below."""
    zero_visit_rate: float | None
    """零跑动率."""
    at_most_one_visit_rate: float | None
    """最多跑一次率."""

    # 即办件占比 = 即办件数 ÷ 申办件数
    immediate: int
    """即办件数: committed time limit of 0 working days."""
    immediate_rate: float | None

    # 秒批率 = 秒批件数 ÷ 申办件数
    instant_approvals: int
    """秒批件数: an auto-approval item decided by the machine (decided_by == "auto")."""
    instant_approval_rate: float | None

    # 按时办结率 = 按期办结件数 ÷ 有承诺时限的办结件数
    completed_with_due_date: int
    completed_on_time: int
    """Completed on a China date no later than the due date."""
    on_time_rate: float | None

    # 平均办理时长 = Σ 受理→办结 工作日数 ÷ 有受理和办结时间的办结件数
    timed_completions: int
    average_working_days: float | None
    """Working days from acceptance to completion (the acceptance day never counts, so a
    same-day completion is 0), averaged."""

    # 容缺受理件数 = 已受理 且（有容缺补齐期限 或 仍有容缺材料）
    tolerated: int
    """容缺受理件数: accepted, and either a 容缺 deadline is set (``tolerated_until``) or a
    material is still ``tolerated`` (e.g. terminated for not supplying it). An application
    whose materials were supplied counts only as long as its deadline is kept."""

    # 好评率 = 满意及非常满意（4–5 分）评价数 ÷ 评价数
    ratings: int
    """评价数: ratings of the counted applications, whenever given."""
    good_ratings: int
    bad_ratings: int
    """差评数 (1–2): each opened a rectification case."""
    good_rating_rate: float | None
    """好评率."""
    average_score: float | None

    # 主动评价率 = 主动评价数（未经提醒）÷ 办结件数
    unprompted_ratings: int
    active_rating_rate: float | None
    """主动评价率."""


def _period(start: date, end: date) -> tuple[datetime, datetime]:
    """``[since, until)`` of the China dates ``[start, end]``, refused when absurd."""
    if end < start:
        raise InvalidPeriod("统计截止日期不能早于起始日期")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise InvalidPeriod("统计期间不能超过十年")
    since = datetime.combine(start, time.min, tzinfo=CHINA_TZ)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=CHINA_TZ)
    return since, until


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


async def statistics(
    session: AsyncSession,
    *,
    department: str | None,
    item_code: str | None,
    start: date,
    end: date,
    calendar: WorkingDayCalendar,
) -> Statistics:
    """The figures of applications submitted in ``[start, end]`` (China dates, inclusive)."""
    since, until = _period(start, end)
    apps = await repository.application_counts(
        session, department=department, item_code=item_code, since=since, until=until
    )
    rated = await repository.rating_counts(
        session, department=department, item_code=item_code, since=since, until=until
    )
    periods = await repository.handling_periods(
        session, department=department, item_code=item_code, since=since, until=until
    )

    handling_days = [
        calendar.working_days_between(china_date(accepted), china_date(completed))
        for accepted, completed in periods
    ]
    total = apps.applications
    return Statistics(
        department=department,
        item_code=item_code,
        start=start,
        end=end,
        applications=total,
        online_applications=apps.online,
        online_application_rate=_ratio(apps.online, total),
        completed=apps.completed,
        fully_online_completed=apps.fully_online_completed,
        online_completion_rate=_ratio(apps.fully_online_completed, total),
        visits_0=apps.visits_0,
        visits_1=apps.visits_1,
        visits_2=apps.visits_2,
        visits_unknown=apps.visits_unknown,
        zero_visit_rate=_ratio(apps.visits_0, total),
        at_most_one_visit_rate=_ratio(apps.visits_0 + apps.visits_1, total),
        immediate=apps.immediate,
        immediate_rate=_ratio(apps.immediate, total),
        instant_approvals=apps.instant_approvals,
        instant_approval_rate=_ratio(apps.instant_approvals, total),
        completed_with_due_date=apps.completed_with_due_date,
        completed_on_time=apps.completed_on_time,
        on_time_rate=_ratio(apps.completed_on_time, apps.completed_with_due_date),
        timed_completions=len(handling_days),
        average_working_days=(sum(handling_days) / len(handling_days) if handling_days else None),
        tolerated=apps.tolerated,
        ratings=rated.ratings,
        good_ratings=rated.good,
        bad_ratings=rated.bad,
        good_rating_rate=_ratio(rated.good, rated.ratings),
        average_score=rated.score_sum / rated.ratings if rated.ratings else None,
        unprompted_ratings=rated.unprompted,
        active_rating_rate=_ratio(rated.unprompted, apps.completed),
    )


# --- by department and month ----------------------------------------------------------------------
#
# The same definitions as above, per department and month of submission, each figure with its
# numerator and denominator so that a reader can check it. The catalogue's own figures (网办率
# and 全程网办率 of items, time-limit compression) are the catalog service's, by the same
# departments and months; the console puts the two side by side.


@dataclass(frozen=True)
class MonthlyFigures:
    department: str
    month: str
    """``YYYY-MM``: applications submitted in that month, China time."""
    applications: int
    """申办件数."""
    immediate: Figure
    """即办率: 即办件 (committed 0 working days) ÷ 申办件数."""
    online: Figure
    """网办率 (上网办理率): applications filed online ÷ 申办件数."""
    online_completed: Figure
    """网上办结率: completed online with no visit ÷ 申办件数."""
    on_time: Figure
    """按时办结率: completed by the due date ÷ completed with a due date."""
    good_rating: Figure
    """好评率: ratings of 4–5 ÷ ratings (of these applications, whenever given)."""
    visits: Figure
    """平均跑动次数: Σ 到现场次数 ÷ applications with a visit count (value is the average)."""
    instant_approval: Figure
    """秒批率: decided by the machine ÷ 申办件数."""


@dataclass(frozen=True)
class MonthlyStatistics:
    start_month: str
    end_month: str
    months: list[str]
    """Every month of the period, in order (a month without applications has no row)."""
    department: str | None
    """The department the figures are limited to; None for all (auditors)."""
    rows: list[MonthlyFigures]
    """By department, then month."""


async def monthly_statistics(
    session: AsyncSession,
    *,
    department: str | None,
    region: str | None,
    start_month: str,
    end_month: str,
) -> MonthlyStatistics:
    """The figures of applications submitted from ``start_month`` to ``end_month`` (``YYYY-MM``,
    China time, inclusive) per department and month."""
    start, end = month_range(start_month, end_month)
    since, until = _period(start, end)
    counted = await repository.monthly_counts(
        session, department=department, region=region, since=since, until=until
    )
    rows = []
    for group in counted:
        apps, rated, total = group.applications, group.ratings, group.applications.applications
        rows.append(
            MonthlyFigures(
                department=group.department,
                month=group.month,
                applications=total,
                immediate=Figure.of(apps.immediate, total),
                online=Figure.of(apps.online, total),
                online_completed=Figure.of(apps.fully_online_completed, total),
                on_time=Figure.of(apps.completed_on_time, apps.completed_with_due_date),
                good_rating=Figure.of(rated.good, rated.ratings),
                visits=Figure.of(group.visits_total, total - apps.visits_unknown),
                instant_approval=Figure.of(apps.instant_approvals, total),
            )
        )
    return MonthlyStatistics(
        start_month=start_month,
        end_month=end_month,
        months=months_of(start, end),
        department=department,
        rows=rows,
    )


FIGURE_NAMES = {
    "immediate": "即办率",
    "online": "网办率",
    "online_completed": "网上办结率",
    "on_time": "按时办结率",
    "good_rating": "好评率",
    "visits": "平均跑动次数",
    "instant_approval": "秒批率",
}
"""The CSV's names of the figures of :class:`MonthlyFigures`, in its columns' order."""

AVERAGES = frozenset({"visits"})
"""Figures whose value is an average (written as a number), not a share (a percentage)."""


def _value_text(name: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if name in AVERAGES else percentage(value)


def monthly_csv(figures: MonthlyStatistics) -> str:
    """The figures as a table: one row per department and month; each figure as its numerator,
    its denominator and its value (shares as percentages with two decimals)."""
    return figures_table(
        leading=["部门", "月份", "申办件数"],
        figure_names=FIGURE_NAMES,
        rows=(
            ([row.department, row.month, str(row.applications)], vars(row)) for row in figures.rows
        ),
        value_text=_value_text,
    )
