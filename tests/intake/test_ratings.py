"""好差评 on the real database: who may rate and when, once only; bad ratings open a
rectification due in 15 working days; the rectification's steps and who may take them; the
overdue list; the events, which never carry the comment or the reply."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import ratings
from intake_service.models import Application, Rating, Rectification, kit_tables
from intake_service.ratings import (
    AlreadyRated,
    InvalidRating,
    InvalidRectificationInput,
    NotApplicant,
    NotRateable,
    NotYourRectification,
    RectificationNotFound,
    RectificationStateConflict,
    ReturnVisitRequired,
)
from tests.intake import factories
from tests.intake.factories import at, unique
from wangban.calendar import WorkingDayCalendar

APPLICANT = "citizen-rating-test"
CALENDAR = WorkingDayCalendar()
# 2026-09-30 is the Wednesday before 国庆 (1–7 October off; Saturday 10 October is a 调休
# working day).
RATED_AT = at(2026, 9, 30, 15, 0)


async def completed(
    session: AsyncSession, *, department: str | None = None, status: str = "completed"
) -> Application:
    return await factories.application(
        session,
        department=department or unique("测试局"),
        item_code="TEST-RATING",
        status=status,
        applicant_subject=APPLICANT,
        submitted_at=at(2026, 9, 28),
        accepted_at=at(2026, 9, 28),
        completed_at=at(2026, 9, 30, 10, 0),
        due_date=date(2026, 10, 9),
    )


async def rate(
    session: AsyncSession,
    application: Application,
    *,
    score: int = 5,
    tags: list[str] | None = None,
    comment: str = "",
    prompted: bool = False,
    rater: str = APPLICANT,
    now: datetime = RATED_AT,
) -> Rating:
    return await ratings.rate(
        session,
        application=application,
        rater_subject=rater,
        score=score,
        tags=tags or [],
        comment=comment,
        prompted=prompted,
        now=now,
        calendar=CALENDAR,
    )


async def count(session: AsyncSession, model: type[Any], application_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(model).where(model.application_id == application_id)
        )
        or 0
    )


async def outbox_rows(session: AsyncSession, application_id: str) -> list[dict[str, Any]]:
    table = kit_tables.outbox
    rows = await session.execute(
        select(table.c.topic, table.c.key, table.c.event_type, table.c.envelope)
        .where(table.c.key == application_id)
        .order_by(table.c.seq)
    )
    return [dict(row._mapping) for row in rows]


# --- rating -----------------------------------------------------------------------------------


def test_labels_and_tags_are_the_published_lists() -> None:
    assert ratings.SCORE_LABELS == {
        1: "非常不满意",
        2: "不满意",
        3: "基本满意",
        4: "满意",
        5: "非常满意",
    }
    assert ratings.RATING_TAGS == (
        "办事效率",
        "办事指南准确",
        "办事便捷",
        "服务态度",
        "材料精简",
        "一次办成",
        "多次跑动",
        "态度冷漠",
        "指南不清",
        "超时办理",
    )
    assert set(ratings.POSITIVE_TAGS).isdisjoint(ratings.NEGATIVE_TAGS)


async def test_the_applicant_rates_a_completed_application(db_session: AsyncSession) -> None:
    application = await completed(db_session)

    rating = await rate(
        db_session,
        application,
        score=5,
        tags=["办事效率", "一次办成", "办事效率"],
        comment="  办得很快，谢谢！ ",
        prompted=True,
    )

    stored = await db_session.get(Rating, application.id)
    assert stored is rating
    assert (rating.score, rating.department, rating.item_code) == (
        5,
        application.department,
        "TEST-RATING",
    )
    assert rating.tags == ["办事效率", "一次办成"]  # duplicates dropped, order kept
    assert rating.comment == "办得很快，谢谢！"
    assert rating.prompted is True
    assert rating.rated_at == RATED_AT
    assert await ratings.rating_of(db_session, application_id=application.id) is rating
    # A good rating opens no rectification.
    assert await count(db_session, Rectification, application.id) == 0


async def test_a_delivered_application_can_be_rated(db_session: AsyncSession) -> None:
    application = await completed(db_session, status="delivered")
    rating = await rate(db_session, application, score=4)
    assert rating.score == 4


async def test_only_the_applicant_rates(db_session: AsyncSession) -> None:
    application = await completed(db_session)

    with pytest.raises(NotApplicant) as refused:
        await rate(db_session, application, rater="someone-else")

    assert refused.value.status == 403
    assert refused.value.type_slug == "not-applicant"
    assert await count(db_session, Rating, application.id) == 0


@pytest.mark.parametrize(
    "status", ["draft", "submitted", "accepted", "under_review", "approved", "denied", "withdrawn"]
)
async def test_not_before_completion(db_session: AsyncSession, status: str) -> None:
    application = await completed(db_session, status=status)

    with pytest.raises(NotRateable) as refused:
        await rate(db_session, application)

    assert refused.value.status == 409
    assert await count(db_session, Rating, application.id) == 0
    assert await outbox_rows(db_session, application.id) == []


async def test_a_rating_is_given_once_and_never_changed(db_session: AsyncSession) -> None:
    application = await completed(db_session)
    await rate(db_session, application, score=4, comment="还可以")

    with pytest.raises(AlreadyRated) as refused:
        await rate(db_session, application, score=1, comment="改成差评")

    assert refused.value.status == 409
    assert refused.value.type_slug == "already-rated"
    application_id = application.id
    db_session.expire_all()
    stored = await db_session.get(Rating, application_id)
    assert stored is not None
    assert (stored.score, stored.comment) == (4, "还可以")
    assert await count(db_session, Rectification, application_id) == 0
    types = [row["event_type"] for row in await outbox_rows(db_session, application_id)]
    assert types == ["cn.wangban.intake.rating.submitted.v1"]


@pytest.mark.parametrize(
    ("score", "tags", "comment", "pointers"),
    [
        (0, [], "", ["/body/score"]),
        (6, [], "", ["/body/score"]),
        (True, [], "", ["/body/score"]),
        (5, ["办事效率", "很好"], "", ["/body/tags/1"]),
        (3, [], "差" * 501, ["/body/comment"]),
        (9, ["随便"], "长" * 600, ["/body/score", "/body/tags/0", "/body/comment"]),
    ],
)
async def test_invalid_ratings_are_refused_with_every_reason(
    db_session: AsyncSession, score: int, tags: list[str], comment: str, pointers: list[str]
) -> None:
    application = await completed(db_session)

    with pytest.raises(InvalidRating) as refused:
        await rate(db_session, application, score=score, tags=tags, comment=comment)

    assert refused.value.status == 422
    assert [e["pointer"] for e in refused.value.extra["errors"]] == pointers
    assert refused.value.detail
    assert await count(db_session, Rating, application.id) == 0


async def test_a_comment_of_500_characters_is_accepted(db_session: AsyncSession) -> None:
    application = await completed(db_session)
    rating = await rate(db_session, application, score=3, comment="好" * 500)
    assert len(rating.comment) == 500


# --- rectification: opening -------------------------------------------------------------------


@pytest.mark.parametrize("score", [1, 2])
async def test_a_bad_rating_opens_a_rectification_due_after_national_day(
    db_session: AsyncSession, score: int
) -> None:
    application = await completed(db_session)

    await rate(db_session, application, score=score, tags=["超时办理"])

    rectification = await ratings.rectification_of(db_session, application_id=application.id)
    assert rectification is not None
    assert rectification.department == application.department
    assert rectification.status == "open"
    assert rectification.opened_at == RATED_AT
    # Rated Wednesday 30 September 2026. 1–7 October are 国庆 days off, so the 15 working days
    # are: Thu 8 (1), Fri 9 (2), Sat 10 (3, 调休 working day), Mon 12 – Fri 16 (4–8),
    # Mon 19 – Fri 23 (9–13), Mon 26 (14), Tue 27 (15).
    assert rectification.due_date == date(2026, 10, 27)


async def test_a_score_of_3_opens_no_rectification(db_session: AsyncSession) -> None:
    application = await completed(db_session)
    await rate(db_session, application, score=3)
    assert await ratings.rectification_of(db_session, application_id=application.id) is None


async def test_the_due_date_counts_from_the_date_in_china(db_session: AsyncSession) -> None:
    application = await completed(db_session)
    # 16:30 UTC on Friday 9 October is 00:30 on Saturday 10 October in China (a 调休 working
    # day, which as the start day does not count). From 10 October: Mon 12 – Fri 16 (1–5),
    # Mon 19 – Fri 23 (6–10), Mon 26 – Fri 30 (11–15) → Friday 30 October. Counted from the UTC
    # date (9 October) it would be Thursday 29 October.
    now = datetime.fromisoformat("2026-10-09T16:30:00+00:00")

    await rate(db_session, application, score=1, now=now)

    rectification = await ratings.rectification_of(db_session, application_id=application.id)
    assert rectification is not None
    assert rectification.due_date == date(2026, 10, 30)


# --- rectification: steps ---------------------------------------------------------------------


async def bad_rating(
    session: AsyncSession, *, department: str | None = None, now: datetime = RATED_AT
) -> Rectification:
    application = await completed(session, department=department)
    await rate(session, application, score=1, comment="跑了三次", now=now)
    rectification = await ratings.rectification_of(session, application_id=application.id)
    assert rectification is not None
    return rectification


async def test_open_replied_closed_with_a_return_visit(db_session: AsyncSession) -> None:
    case = await bad_rating(db_session)
    department = case.department

    replied = await ratings.reply(
        db_session,
        rectification_id=case.id,
        department=department,
        reply="  已约谈窗口人员，优化了材料清单。 ",
        now=at(2026, 10, 12, 10),
    )
    assert replied.status == "replied"
    assert replied.reply == "已约谈窗口人员，优化了材料清单。"
    assert replied.replied_at == at(2026, 10, 12, 10)

    visited = await ratings.record_return_visit(
        db_session,
        rectification_id=case.id,
        department=department,
        note="电话回访，申请人表示认可。",
        now=at(2026, 10, 13, 15),
    )
    assert visited.status == "replied"
    assert visited.return_visit == "电话回访，申请人表示认可。"

    closed = await ratings.close(
        db_session,
        rectification_id=case.id,
        department=department,
        by="staff-manager-1",
        now=at(2026, 10, 14, 9),
    )
    assert closed.status == "closed"
    assert closed.closed_by == "staff-manager-1"
    assert closed.closed_at == at(2026, 10, 14, 9)

    await db_session.refresh(case)
    assert case.status == "closed"


async def test_steps_out_of_order_are_refused(db_session: AsyncSession) -> None:
    case = await bad_rating(db_session)
    department = case.department
    ids = {"rectification_id": case.id, "department": department}
    now = at(2026, 10, 12)

    with pytest.raises(RectificationStateConflict):
        await ratings.record_return_visit(db_session, **ids, note="回访", now=now)
    with pytest.raises(RectificationStateConflict):
        await ratings.close(db_session, **ids, by="staff-1", now=now)

    await ratings.reply(db_session, **ids, reply="已整改", now=now)
    with pytest.raises(RectificationStateConflict):
        await ratings.reply(db_session, **ids, reply="再答复一次", now=now)
    with pytest.raises(ReturnVisitRequired) as no_visit:
        await ratings.close(db_session, **ids, by="staff-1", now=now)
    assert no_visit.value.status == 409
    assert no_visit.value.type_slug == "return-visit-required"

    await ratings.record_return_visit(db_session, **ids, note="已回访", now=now)
    with pytest.raises(RectificationStateConflict):
        await ratings.record_return_visit(db_session, **ids, note="又回访", now=now)

    await ratings.close(db_session, **ids, by="staff-1", now=now)
    with pytest.raises(RectificationStateConflict):
        await ratings.close(db_session, **ids, by="staff-1", now=now)
    with pytest.raises(RectificationStateConflict):
        await ratings.reply(db_session, **ids, reply="办结后答复", now=now)
    with pytest.raises(RectificationStateConflict):
        await ratings.record_return_visit(db_session, **ids, note="办结后回访", now=now)

    await db_session.refresh(case)
    assert (case.reply, case.return_visit, case.status) == ("已整改", "已回访", "closed")


async def test_only_the_rectifications_own_department(db_session: AsyncSession) -> None:
    case = await bad_rating(db_session)
    other = {"rectification_id": case.id, "department": unique("别的局")}
    now = at(2026, 10, 12)

    with pytest.raises(NotYourRectification) as refused:
        await ratings.reply(db_session, **other, reply="不是我们的", now=now)
    assert refused.value.status == 403

    await ratings.reply(
        db_session, rectification_id=case.id, department=case.department, reply="已整改", now=now
    )
    with pytest.raises(NotYourRectification):
        await ratings.record_return_visit(db_session, **other, note="回访", now=now)
    await ratings.record_return_visit(
        db_session, rectification_id=case.id, department=case.department, note="回访", now=now
    )
    with pytest.raises(NotYourRectification):
        await ratings.close(db_session, **other, by="staff-x", now=now)

    await db_session.refresh(case)
    assert case.status == "replied"


async def test_unknown_rectifications_and_empty_texts(db_session: AsyncSession) -> None:
    case = await bad_rating(db_session)
    now = at(2026, 10, 12)

    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        with pytest.raises(RectificationNotFound) as not_found:
            await ratings.reply(
                db_session,
                rectification_id=missing,
                department=case.department,
                reply="答复",
                now=now,
            )
        assert not_found.value.status == 404

    with pytest.raises(InvalidRectificationInput) as empty:
        await ratings.reply(
            db_session,
            rectification_id=case.id,
            department=case.department,
            reply="   ",
            now=now,
        )
    assert empty.value.status == 422
    assert [e["pointer"] for e in empty.value.extra["errors"]] == ["/body/reply"]
    with pytest.raises(InvalidRectificationInput):
        await ratings.reply(
            db_session,
            rectification_id=case.id,
            department=case.department,
            reply="长" * 2001,
            now=now,
        )
    await ratings.reply(
        db_session, rectification_id=case.id, department=case.department, reply="答复", now=now
    )
    with pytest.raises(InvalidRectificationInput) as empty_note:
        await ratings.record_return_visit(
            db_session, rectification_id=case.id, department=case.department, note="", now=now
        )
    assert [e["pointer"] for e in empty_note.value.extra["errors"]] == ["/body/note"]


# --- overdue ----------------------------------------------------------------------------------


async def test_overdue_rectifications(db_session: AsyncSession) -> None:
    ours, theirs = unique("民政局"), unique("人社局")
    # Due dates (15 working days after the rating, see above): rated 30 Sep → 27 Oct;
    # rated Thu 1 Oct (holiday) → also 27 Oct; rated Mon 12 Oct → 12 Oct + 15 = Mon 2 Nov.
    early = await bad_rating(db_session, department=ours, now=at(2026, 9, 30, 9))
    holiday = await bad_rating(db_session, department=ours, now=at(2026, 10, 1, 9))
    later = await bad_rating(db_session, department=ours, now=at(2026, 10, 12, 9))
    closed = await bad_rating(db_session, department=ours, now=at(2026, 9, 29, 9))
    other = await bad_rating(db_session, department=theirs, now=at(2026, 9, 30, 10))
    assert (early.due_date, holiday.due_date, later.due_date) == (
        date(2026, 10, 27),
        date(2026, 10, 27),
        date(2026, 11, 2),
    )
    ids = {"rectification_id": closed.id, "department": ours}
    await ratings.reply(db_session, **ids, reply="已整改", now=at(2026, 10, 20))
    await ratings.record_return_visit(db_session, **ids, note="已回访", now=at(2026, 10, 21))
    await ratings.close(db_session, **ids, by="staff-1", now=at(2026, 10, 22))
    # A replied case that is not closed is still overdue.
    await ratings.reply(
        db_session, rectification_id=holiday.id, department=ours, reply="已整改", now=RATED_AT
    )

    async def overdue(today: date, department: str | None) -> list[str]:
        cases = await ratings.overdue_rectifications(db_session, today=today, department=department)
        return [c.id for c in cases]

    # Due on 27 October: not yet overdue on that day, overdue the day after.
    assert await overdue(date(2026, 10, 27), ours) == []
    assert await overdue(date(2026, 10, 28), ours) == [early.id, holiday.id]
    assert await overdue(date(2026, 11, 3), ours) == [early.id, holiday.id, later.id]
    assert await overdue(date(2026, 11, 3), theirs) == [other.id]
    everyone = await overdue(date(2026, 11, 3), None)
    mine = [i for i in everyone if i in {early.id, holiday.id, later.id, closed.id, other.id}]
    # Most overdue first; among cases due the same day, the first opened first.
    assert mine == [early.id, other.id, holiday.id, later.id]
    assert closed.id not in everyone


# --- events -----------------------------------------------------------------------------------


async def test_events_carry_no_comment_or_reply(db_session: AsyncSession) -> None:
    application = await completed(db_session)
    comment = "窗口的张三态度很差，我的电话13800138000没人回"
    await rate(
        db_session,
        application,
        score=2,
        tags=["态度冷漠", "多次跑动"],
        comment=comment,
        prompted=False,
    )
    case = await ratings.rectification_of(db_session, application_id=application.id)
    assert case is not None
    ids = {"rectification_id": case.id, "department": case.department}
    await ratings.reply(db_session, **ids, reply="已批评教育张三", now=at(2026, 10, 12, 10))
    await ratings.record_return_visit(
        db_session, **ids, note="回访13800138000，满意", now=at(2026, 10, 13)
    )
    await ratings.close(db_session, **ids, by="staff-manager-1", now=at(2026, 10, 28, 9))

    rows = await outbox_rows(db_session, application.id)

    assert [row["event_type"] for row in rows] == [
        "cn.wangban.intake.rating.submitted.v1",
        "cn.wangban.intake.rectification.opened.v1",
        "cn.wangban.intake.rectification.replied.v1",
        "cn.wangban.intake.rectification.closed.v1",
    ]
    assert {row["topic"] for row in rows} == {"wangban.intake.ratings"}
    assert {row["key"] for row in rows} == {application.id}
    submitted, opened, replied, closed = (row["envelope"] for row in rows)
    assert submitted["source"] == "/wangban/intake"
    assert submitted["subject"] == application.id
    assert submitted["data"] == {
        "application_id": application.id,
        "department": application.department,
        "item_code": "TEST-RATING",
        "score": 2,
        "tags": ["态度冷漠", "多次跑动"],
        "prompted": False,
        "rated_at": RATED_AT.isoformat(),
    }
    assert opened["data"] == {
        "rectification_id": case.id,
        "application_id": application.id,
        "department": application.department,
        "item_code": "TEST-RATING",
        "score": 2,
        "opened_at": RATED_AT.isoformat(),
        "due_date": "2026-10-27",
    }
    assert replied["data"]["on_time"] is True
    assert replied["data"]["replied_at"] == at(2026, 10, 12, 10).isoformat()
    # Closed on 28 October, the day after it was due.
    assert closed["data"]["on_time"] is False
    assert closed["data"]["closed_by"] == "staff-manager-1"
    everything = json.dumps([row["envelope"] for row in rows], ensure_ascii=False)
    for secret in ("张三", "13800138000", "态度很差", "满意"):
        assert secret not in everything
