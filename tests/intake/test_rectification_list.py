"""The list of a department's rectifications (整改): the rating that opened each, the item,
the deadline in working days and the overdue flag; by state; each reviewer sees their own
department's only, auditors every department's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import ratings
from intake_service.models import Application, Rectification
from tests.intake import factories
from tests.intake.factories import at, unique
from tests.intake.support import Intake
from wangban.calendar import WorkingDayCalendar

CALENDAR = WorkingDayCalendar()
APPLICANT = "citizen-rectification-list"


async def bad_rating(
    session: AsyncSession,
    *,
    department: str,
    now: datetime,
    score: int = 1,
    comment: str = "跑了三次",
) -> tuple[Application, Rectification | None]:
    application = await factories.application(
        session,
        department=department,
        item_code="TEST-RECTIFY",
        status="completed",
        applicant_subject=APPLICANT,
        submitted_at=now - timedelta(days=3),
        accepted_at=now - timedelta(days=3),
        completed_at=now - timedelta(hours=1),
        due_date=(now + timedelta(days=5)).date(),
    )
    await ratings.rate(
        session,
        application=application,
        rater_subject=APPLICANT,
        score=score,
        tags=["多次跑动"],
        comment=comment,
        prompted=False,
        now=now,
        calendar=CALENDAR,
    )
    return application, await ratings.rectification_of(session, application_id=application.id)


async def test_the_list_counts_working_days_to_the_deadline(db_session: AsyncSession) -> None:
    ours, theirs = unique("民政局"), unique("人社局")
    # Rated Wed 30 Sep (before 国庆) → due Tue 27 Oct; rated Mon 12 Oct → due Mon 2 Nov.
    _, early = await bad_rating(db_session, department=ours, now=at(2026, 9, 30, 9))
    application, later = await bad_rating(
        db_session, department=ours, now=at(2026, 10, 12, 9), comment="指南写得不清楚"
    )
    _, closed = await bad_rating(db_session, department=ours, now=at(2026, 9, 29, 9))
    _, other = await bad_rating(db_session, department=theirs, now=at(2026, 9, 30, 9))
    await bad_rating(db_session, department=ours, now=at(2026, 9, 30, 9), score=3)  # no case
    assert early and later and closed and other
    ids = {"rectification_id": closed.id, "department": ours}
    await ratings.reply(db_session, **ids, reply="已整改", now=at(2026, 10, 20))
    await ratings.record_return_visit(db_session, **ids, note="已回访", now=at(2026, 10, 21))
    await ratings.close(db_session, **ids, by="staff-1", now=at(2026, 10, 22))

    async def listed(
        today: date, status: ratings.RectificationState | None = None
    ) -> list[ratings.RectificationView]:
        return await ratings.rectifications(
            db_session, department=ours, status=status, today=today, calendar=CALENDAR
        )

    # Fri 23 Oct: 27 Oct is 2 working days away (Mon 26, Tue 27), 2 Nov 6 working days.
    views = await listed(date(2026, 10, 23))
    assert [v.rectification.id for v in views] == [early.id, later.id, closed.id]
    first, second, done = views
    assert (first.working_days_left, first.overdue) == (2, False)
    assert (second.working_days_left, second.overdue) == (6, False)
    assert (done.working_days_left, done.overdue) == (None, False)
    assert second.rating.score == 1 and second.rating.comment == "指南写得不清楚"
    assert second.rating.tags == ["多次跑动"]
    assert (second.item_code, second.item_name) == ("TEST-RECTIFY", application.item_name)

    # Due day itself: 0 left, not overdue; the day after: overdue.
    [due_today] = [v for v in await listed(date(2026, 10, 27)) if v.rectification.id == early.id]
    assert (due_today.working_days_left, due_today.overdue) == (0, False)
    # Wed 4 Nov: 27 Oct is 6 working days behind (28, 29, 30 Oct, 2, 3, 4 Nov), 2 Nov 2.
    views = await listed(date(2026, 11, 4))
    assert [(v.working_days_left, v.overdue) for v in views] == [
        (-6, True),
        (-2, True),
        (None, False),
    ]
    # Sat 31 Oct: past 27 Oct by working days Wed–Fri; a weekend adds none.
    assert (await listed(date(2026, 10, 31)))[0].working_days_left == -3
    assert (await listed(date(2026, 11, 1)))[0].working_days_left == -3

    assert [v.rectification.id for v in await listed(date(2026, 11, 4), "open")] == [
        early.id,
        later.id,
    ]
    assert [v.rectification.id for v in await listed(date(2026, 11, 4), "closed")] == [closed.id]
    assert await listed(date(2026, 11, 4), "replied") == []
    everyone = await ratings.rectifications(
        db_session, department=None, status=None, today=date(2026, 11, 4), calendar=CALENDAR
    )
    assert {early.id, later.id, closed.id, other.id} <= {v.rectification.id for v in everyone}


async def test_each_department_sees_its_own_and_auditors_all(intake: Intake) -> None:
    ours, theirs = unique("民政局"), unique("人社局")
    now = datetime.now(UTC)
    async with intake.database.sessionmaker() as session, session.begin():
        _, fresh = await bad_rating(session, department=ours, now=now)
        _, old = await bad_rating(session, department=ours, now=now - timedelta(days=60))
        _, foreign = await bad_rating(session, department=theirs, now=now)
    assert fresh and old and foreign

    reviewer = intake.staff("r-list", "reviewer", department=ours)
    listed = await intake.client.get("/staff/rectifications", headers=reviewer)
    assert listed.status_code == 200, listed.text
    rows = {row["id"]: row for row in listed.json()}
    assert set(rows) == {fresh.id, old.id}
    # Rated today: the day of the rating does not count, so 15 working days are left.
    assert rows[fresh.id]["working_days_left"] == 15 and rows[fresh.id]["overdue"] is False
    assert rows[old.id]["overdue"] is True and rows[old.id]["working_days_left"] < 0
    assert rows[fresh.id]["score"] == 1 and rows[fresh.id]["score_label"] == "非常不满意"
    assert rows[fresh.id]["comment"] == "跑了三次" and rows[fresh.id]["tags"] == ["多次跑动"]
    assert rows[fresh.id]["status"] == "open" and rows[fresh.id]["item_code"] == "TEST-RECTIFY"

    replied = await intake.client.post(
        f"/staff/rectifications/{old.id}/reply", json={"text": "已整改"}, headers=reviewer
    )
    assert replied.status_code == 200
    by_state = await intake.client.get(
        "/staff/rectifications", params={"status": "replied"}, headers=reviewer
    )
    assert [row["id"] for row in by_state.json()] == [old.id]
    unknown = await intake.client.get(
        "/staff/rectifications", params={"status": "lost"}, headers=reviewer
    )
    assert unknown.status_code == 422

    # A reviewer of another department does not see ours, whatever they ask.
    other = intake.staff("r-list-2", "reviewer", department=theirs)
    assert [
        row["id"]
        for row in (await intake.client.get("/staff/rectifications", headers=other)).json()
    ] == [foreign.id]
    auditor = intake.staff("a-list", "auditor")
    everyone = {
        row["id"]
        for row in (await intake.client.get("/staff/rectifications", headers=auditor)).json()
    }
    assert {fresh.id, old.id, foreign.id} <= everyone
    clerk = intake.staff("c-list", "window_clerk", department=ours)
    refused = await intake.client.get("/staff/rectifications", headers=clerk)
    assert refused.status_code == 403
