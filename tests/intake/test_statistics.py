"""三率一数 and the other figures, on a small fixture whose every figure is computed by hand.

The period is April 2019 (China dates), which no other test uses. Working days that matter:
Friday 5 April was 清明 (off); Sunday 28 April was a 调休 working day before 劳动节; Saturday
27 April was off.

民政局 (department D1), items A and B — counted (秒批: auto item / decided by; 容缺: how):

  app item channel status     visits 承诺 秒批        accepted → completed   due   容缺        rated
  a1  A    mini    completed  0      0    auto/auto   04-01 09:00 → 09:01    04-01 –           5
  a2  A    web     delivered  0      5    auto/person 04-03 10:00 → 04-10 16 04-11 –           4 (p)
  a3  B    window  completed  1      3    –           04-03 09:30 → 04-10 09 04-09 until 04-08 2
  a4  B    mini    completed  1      1    –           04-26 09:00 → 04-29 07 04-28 –           –
  a5  A    window  submitted  2      5    –           –                      –     material    –
  a6  A    mini    terminated 0      5    –           04-15 09:00 → –        –     material    –

("mini" is the mini-program; a5's tolerated material does not count: it is not accepted; a6's
still does; a3's was supplied since and counts by its kept deadline.)

Not counted: a draft; one submitted 2019-03-31 23:59 (rated 1); one submitted 2019-05-01 00:00;
a bundle parent (counted through its members, none here). a5 was submitted 2019-04-30 23:30,
the last minute of the period (15:30 UTC).

Due dates and handling times (working days after acceptance, acceptance day not counted):
a2 accepted Wed 3 Apr + 5 → Thu 4, Mon 8, Tue 9, Wed 10, Thu 11 = 04-11; done 04-10: 4 days
(4, 8, 9, 10), on time. a3 accepted 3 Apr + 3 → 04-09; done 04-10: 4 days, late. a4 accepted
Fri 26 Apr + 1 → Sun 28 Apr (调休); done Mon 29 Apr 07:00 China time (Sun 28 Apr 23:00 UTC):
late by the China date, 2 days (28, 29). a1: 0 days, on time. Ratings are unprompted
unless marked (p), prompted.

人社局 (department D2), item C — counted:

  app channel  status    visits 承诺 秒批      accepted → completed    due   容缺        rated
  b1  mini     completed 0      0    auto/auto 04-08 08:00 → 08:00     04-08 –           5 (p)
  b2  kiosk    withdrawn 1      2    –         –                       –     –           –
  b3  web      approved  0      0    auto/auto 04-09 10:00 → –         04-09 until 04-16 –
  b4  mini     completed 0      10   –         04-02 09:00 → 04-17 17  04-17 –           3
  b5  window   delivered 1      –    –         04-10 10:00 → 04-12 10  –     –           –

b4 accepted Tue 2 Apr + 10 → 3, 4, 8, 9, 10, 11, 12, 15, 16, 17 = 04-17; done that day: 10
days, on time. b5: 2 days (11, 12), no committed limit (not in the on-time figure).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from intake_service.statistics import InvalidPeriod, Statistics, statistics
from tests.intake import factories
from tests.intake.factories import at, unique
from wangban.calendar import WorkingDayCalendar

CALENDAR = WorkingDayCalendar()
START, END = date(2019, 4, 1), date(2019, 4, 30)


@dataclass(frozen=True)
class Fixture:
    d1: str
    d2: str
    item_a: str
    item_b: str
    item_c: str


@pytest.fixture
async def fixture(db_session: AsyncSession) -> Fixture:
    f = Fixture(
        d1=unique("民政局"),
        d2=unique("人社局"),
        item_a=unique("A"),
        item_b=unique("B"),
        item_c=unique("C"),
    )
    app = factories.application
    s = db_session

    a1 = await app(
        s,
        department=f.d1,
        item_code=f.item_a,
        channel="mini_program",
        status="completed",
        visits=0,
        committed_days=0,
        auto_approval=True,
        decided_by="auto",
        submitted_at=at(2019, 4, 1, 9),
        accepted_at=at(2019, 4, 1, 9),
        completed_at=at(2019, 4, 1, 9, 1),
        due_date=date(2019, 4, 1),
    )
    a2 = await app(
        s,
        department=f.d1,
        item_code=f.item_a,
        channel="web",
        status="delivered",
        visits=0,
        committed_days=5,
        auto_approval=True,
        decided_by="reviewer-1",
        submitted_at=at(2019, 4, 2, 10),
        accepted_at=at(2019, 4, 3, 10),
        completed_at=at(2019, 4, 10, 16),
        due_date=date(2019, 4, 11),
    )
    a3 = await app(
        s,
        department=f.d1,
        item_code=f.item_b,
        channel="window",
        status="completed",
        visits=1,
        committed_days=3,
        submitted_at=at(2019, 4, 3, 9),
        accepted_at=at(2019, 4, 3, 9, 30),
        completed_at=at(2019, 4, 10, 9),
        due_date=date(2019, 4, 9),
        tolerated_until=date(2019, 4, 8),
    )
    # Its tolerated material was supplied since: counted by its kept deadline.
    await factories.material(s, application=a3, status="uploaded")
    await app(
        s,
        department=f.d1,
        item_code=f.item_b,
        channel="mini_program",
        status="completed",
        visits=1,
        committed_days=1,
        submitted_at=at(2019, 4, 25, 14),
        accepted_at=at(2019, 4, 26, 9),
        completed_at=at(2019, 4, 29, 7),
        due_date=date(2019, 4, 28),
    )
    a5 = await app(
        s,
        department=f.d1,
        item_code=f.item_a,
        channel="window",
        status="submitted",
        visits=2,
        committed_days=5,
        submitted_at=at(2019, 4, 30, 23, 30),
    )
    await factories.material(s, application=a5, status="tolerated")
    a6 = await app(
        s,
        department=f.d1,
        item_code=f.item_a,
        channel="mini_program",
        status="terminated",
        visits=0,
        committed_days=5,
        submitted_at=at(2019, 4, 15, 9),
        accepted_at=at(2019, 4, 15, 9),
        due_date=date(2019, 4, 22),
    )
    await factories.material(s, application=a6, status="tolerated")
    await factories.material(s, application=a6, status="shared", index=1, name="身份证")
    # Not counted.
    await app(s, department=f.d1, item_code=f.item_a, status="draft", submitted_at=None)
    before = await app(
        s,
        department=f.d1,
        item_code=f.item_a,
        status="completed",
        submitted_at=at(2019, 3, 31, 23, 59),
        accepted_at=at(2019, 4, 1, 9),
        completed_at=at(2019, 4, 1, 10),
        due_date=date(2019, 4, 8),
    )
    await factories.rating(s, application=before, score=1)
    await app(
        s,
        department=f.d1,
        item_code=f.item_a,
        status="submitted",
        submitted_at=at(2019, 5, 1, 0, 0),
    )
    await app(
        s,
        department=f.d1,
        item_code=f.item_a,
        kind="bundle",
        status="completed",
        submitted_at=at(2019, 4, 10),
        accepted_at=at(2019, 4, 10),
        completed_at=at(2019, 4, 10),
        due_date=date(2019, 4, 10),
    )
    await factories.rating(s, application=a1, score=5, prompted=False)
    await factories.rating(s, application=a2, score=4, prompted=True)
    await factories.rating(s, application=a3, score=2, prompted=False, tags=["超时办理"])

    b1 = await app(
        s,
        department=f.d2,
        item_code=f.item_c,
        channel="mini_program",
        status="completed",
        visits=0,
        committed_days=0,
        auto_approval=True,
        decided_by="auto",
        submitted_at=at(2019, 4, 8, 8),
        accepted_at=at(2019, 4, 8, 8),
        completed_at=at(2019, 4, 8, 8),
        due_date=date(2019, 4, 8),
    )
    await app(
        s,
        department=f.d2,
        item_code=f.item_c,
        channel="kiosk",
        status="withdrawn",
        visits=1,
        committed_days=2,
        submitted_at=at(2019, 4, 8, 10),
    )
    b3 = await app(
        s,
        department=f.d2,
        item_code=f.item_c,
        channel="web",
        status="approved",
        visits=0,
        committed_days=0,
        auto_approval=True,
        decided_by="auto",
        submitted_at=at(2019, 4, 9, 10),
        accepted_at=at(2019, 4, 9, 10),
        due_date=date(2019, 4, 9),
        tolerated_until=date(2019, 4, 16),
    )
    await factories.material(s, application=b3, status="tolerated")
    b4 = await app(
        s,
        department=f.d2,
        item_code=f.item_c,
        channel="mini_program",
        status="completed",
        visits=0,
        committed_days=10,
        submitted_at=at(2019, 4, 1, 10),
        accepted_at=at(2019, 4, 2, 9),
        completed_at=at(2019, 4, 17, 17),
        due_date=date(2019, 4, 17),
    )
    await app(
        s,
        department=f.d2,
        item_code=f.item_c,
        channel="window",
        status="delivered",
        visits=1,
        committed_days=None,
        submitted_at=at(2019, 4, 10, 10),
        accepted_at=at(2019, 4, 10, 10),
        completed_at=at(2019, 4, 12, 10),
        due_date=None,
    )
    await factories.rating(s, application=b1, score=5, prompted=True)
    await factories.rating(s, application=b4, score=3, prompted=False)
    return f


async def figures(
    session: AsyncSession,
    *,
    department: str | None,
    item_code: str | None = None,
    start: date = START,
    end: date = END,
) -> Statistics:
    return await statistics(
        session,
        department=department,
        item_code=item_code,
        start=start,
        end=end,
        calendar=CALENDAR,
    )


async def test_department_one(db_session: AsyncSession, fixture: Fixture) -> None:
    got = await figures(db_session, department=fixture.d1)

    assert (got.department, got.item_code, got.start, got.end) == (fixture.d1, None, START, END)
    assert got.applications == 6  # a1–a6
    # 上网办理率: a1, a2, a4, a6 online of 6.
    assert got.online_applications == 4
    assert got.online_application_rate == 4 / 6
    # 网上办结率: a1 and a2 completed online without a visit (a3 at a window, a4 one visit).
    assert got.completed == 4  # a1, a2 (delivered), a3, a4
    assert got.fully_online_completed == 2
    assert got.online_completion_rate == 2 / 6
    # 到现场次数: 0 → a1, a2, a6; 1 → a3, a4; 2 → a5.
    assert (got.visits_0, got.visits_1, got.visits_2, got.visits_unknown) == (3, 2, 1, 0)
    assert got.zero_visit_rate == 3 / 6
    assert got.at_most_one_visit_rate == 5 / 6
    # 即办: a1 (0 days). 秒批: a1 only (a2 was an auto item decided by a person).
    assert (got.immediate, got.immediate_rate) == (1, 1 / 6)
    assert (got.instant_approvals, got.instant_approval_rate) == (1, 1 / 6)
    # On time: a1, a2 of a1–a4 (a3 a day late, a4 late by the China date).
    assert (got.completed_with_due_date, got.completed_on_time) == (4, 2)
    assert got.on_time_rate == 2 / 4
    # Handling: a1 0, a2 4, a3 4, a4 2 → 10 / 4.
    assert got.timed_completions == 4
    assert got.average_working_days == 2.5
    # 容缺: a3 (deadline kept), a6 (material still tolerated); a5 is not accepted yet.
    assert got.tolerated == 2
    # Ratings of a1 (5), a2 (4), a3 (2); the rating of the March application is not counted.
    assert (got.ratings, got.good_ratings, got.bad_ratings) == (3, 2, 1)
    assert got.good_rating_rate == 2 / 3
    assert got.average_score == 11 / 3
    # 主动评价率: a1 and a3 rated unprompted, of 4 completed.
    assert got.unprompted_ratings == 2
    assert got.active_rating_rate == 2 / 4


async def test_department_two(db_session: AsyncSession, fixture: Fixture) -> None:
    got = await figures(db_session, department=fixture.d2)

    assert got.applications == 5  # b1–b5
    assert (got.online_applications, got.online_application_rate) == (3, 3 / 5)  # b1, b3, b4
    assert got.completed == 3  # b1, b4, b5 (delivered)
    assert (got.fully_online_completed, got.online_completion_rate) == (2, 2 / 5)  # b1, b4
    assert (got.visits_0, got.visits_1, got.visits_2, got.visits_unknown) == (3, 2, 0, 0)
    assert (got.zero_visit_rate, got.at_most_one_visit_rate) == (3 / 5, 1.0)
    assert (got.immediate, got.immediate_rate) == (2, 2 / 5)  # b1, b3
    assert (got.instant_approvals, got.instant_approval_rate) == (2, 2 / 5)  # b1, b3
    # b5 has no committed limit: only b1 and b4, both on time.
    assert (got.completed_with_due_date, got.completed_on_time, got.on_time_rate) == (2, 2, 1.0)
    # b1 0, b4 10, b5 2 → 12 / 3.
    assert (got.timed_completions, got.average_working_days) == (3, 4.0)
    assert got.tolerated == 1  # b3
    assert (got.ratings, got.good_ratings, got.bad_ratings) == (2, 1, 0)
    assert (got.good_rating_rate, got.average_score) == (1 / 2, 4.0)
    assert (got.unprompted_ratings, got.active_rating_rate) == (1, 1 / 3)  # b4 of 3 completed


async def test_all_departments(db_session: AsyncSession, fixture: Fixture) -> None:
    # Nothing else in the database was submitted in April 2019, so this is D1 + D2.
    got = await figures(db_session, department=None)

    assert got.applications == 11
    assert (got.online_applications, got.online_application_rate) == (7, 7 / 11)
    assert (got.completed, got.fully_online_completed) == (7, 4)
    assert got.online_completion_rate == 4 / 11
    assert (got.visits_0, got.visits_1, got.visits_2) == (6, 4, 1)
    assert (got.zero_visit_rate, got.at_most_one_visit_rate) == (6 / 11, 10 / 11)
    assert (got.immediate, got.instant_approvals) == (3, 3)
    assert (got.completed_with_due_date, got.completed_on_time, got.on_time_rate) == (6, 4, 4 / 6)
    # 0 + 4 + 4 + 2 + 0 + 10 + 2 = 22 over 7 completions.
    assert (got.timed_completions, got.average_working_days) == (7, 22 / 7)
    assert got.tolerated == 3
    assert (got.ratings, got.good_ratings, got.bad_ratings) == (5, 3, 1)
    assert (got.good_rating_rate, got.average_score) == (3 / 5, 19 / 5)
    assert (got.unprompted_ratings, got.active_rating_rate) == (3, 3 / 7)


async def test_one_item(db_session: AsyncSession, fixture: Fixture) -> None:
    got = await figures(db_session, department=fixture.d1, item_code=fixture.item_b)

    # a3 (window, 1 visit, late, 容缺, rated 2 unprompted) and a4 (online, 1 visit, late).
    assert (got.applications, got.online_applications, got.completed) == (2, 1, 2)
    assert (got.online_application_rate, got.online_completion_rate) == (1 / 2, 0.0)
    assert (got.visits_0, got.visits_1, got.zero_visit_rate) == (0, 2, 0.0)
    assert (got.on_time_rate, got.average_working_days) == (0.0, 3.0)
    assert got.tolerated == 1
    assert (got.ratings, got.good_rating_rate, got.bad_ratings) == (1, 0.0, 1)
    assert got.active_rating_rate == 1 / 2
    # The item filter alone (any department) gives the same.
    assert await figures(db_session, department=None, item_code=fixture.item_b) == Statistics(
        **{**got.__dict__, "department": None}
    )


async def test_the_period_bounds_are_china_dates(
    db_session: AsyncSession, fixture: Fixture
) -> None:
    # 30 April alone: only a5, submitted at 23:30 China time (15:30 UTC).
    last_day = await figures(db_session, department=fixture.d1, start=END, end=END)
    assert last_day.applications == 1
    assert (last_day.visits_2, last_day.completed) == (1, 0)
    # 1 May: the one submitted at 00:00 China time (30 April 16:00 UTC).
    assert (
        await figures(
            db_session, department=fixture.d1, start=date(2019, 5, 1), end=date(2019, 5, 1)
        )
    ).applications == 1
    # 31 March: the one submitted at 23:59, with its rating.
    march = await figures(
        db_session, department=fixture.d1, start=date(2019, 3, 31), end=date(2019, 3, 31)
    )
    assert (march.applications, march.ratings, march.bad_ratings) == (1, 1, 1)


async def test_no_applications_no_ratios(db_session: AsyncSession, fixture: Fixture) -> None:
    got = await figures(db_session, department=unique("没有办件的局"))

    assert got.applications == got.completed == got.ratings == got.timed_completions == 0
    assert got.online_application_rate is None
    assert got.online_completion_rate is None
    assert got.zero_visit_rate is None
    assert got.at_most_one_visit_rate is None
    assert got.immediate_rate is None
    assert got.instant_approval_rate is None
    assert got.on_time_rate is None
    assert got.average_working_days is None
    assert got.good_rating_rate is None
    assert got.average_score is None
    assert got.active_rating_rate is None


async def test_a_period_that_ends_before_it_starts_is_refused(db_session: AsyncSession) -> None:
    with pytest.raises(InvalidPeriod) as refused:
        await figures(db_session, department=None, start=END, end=START)
    assert refused.value.status == 422
    with pytest.raises(InvalidPeriod):
        await figures(db_session, department=None, start=date(2000, 1, 1), end=date(2019, 1, 1))
