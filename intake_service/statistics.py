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
from wangban.errors import ValidationFailed

__all__ = ["InvalidPeriod", "Statistics", "statistics"]

MAX_PERIOD_DAYS = 3660
"""About ten years: a longer period is a mistake, and would scan everything."""


class InvalidPeriod(ValidationFailed):
    type_slug = "invalid-statistics-period"
    title = "统计期间有误"


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
    if end < start:
        raise InvalidPeriod("统计截止日期不能早于起始日期")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise InvalidPeriod("统计期间不能超过十年")
    since = datetime.combine(start, time.min, tzinfo=CHINA_TZ)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=CHINA_TZ)
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
