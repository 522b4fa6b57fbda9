"""好差评 and the rectification (整改) of bad ratings. No HTTP here; functions flush, never commit.

- Only the applicant rates, only a completed (办结) or delivered application, and only once:
  a rating is immutable. Scores run 1 非常不满意 … 5 非常满意; tags come from a fixed list;
  the comment is at most 500 characters and never leaves the service in an event.
- A score of 1 or 2 opens a rectification case for the application's deciding department, due
  15 working days after the rating (the day of the rating does not count, see
  :class:`~wangban.calendar.WorkingDayCalendar`).
- A case goes open → replied → closed, each step by the case's own department only; it can be
  closed only after the applicant was visited back (回访), which is recorded while it is
  ``replied``.

Dates are China dates: a rating given at 00:30 on 1 October Beijing time is a rating of
1 October, whatever the offset of the ``datetime`` passed in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import repository
from intake_service.events import (
    RatingSubmitted,
    RectificationClosed,
    RectificationOpened,
    RectificationReplied,
    outbox,
)
from intake_service.models import Application, Rating, Rectification
from wangban.calendar import CHINA_TZ, WorkingDayCalendar, china_date
from wangban.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed

__all__ = [
    "CHINA_TZ",
    "COMMENT_MAX_LENGTH",
    "NEGATIVE_TAGS",
    "POSITIVE_TAGS",
    "RATEABLE_STATUSES",
    "RATING_TAGS",
    "RECTIFICATION_STATES",
    "RECTIFICATION_WORKING_DAYS",
    "SCORE_LABELS",
    "AlreadyRated",
    "InvalidRating",
    "InvalidRectificationInput",
    "NotApplicant",
    "NotRateable",
    "NotYourRectification",
    "RectificationNotFound",
    "RectificationState",
    "RectificationStateConflict",
    "RectificationView",
    "ReturnVisitRequired",
    "china_date",
    "close",
    "overdue_rectifications",
    "rate",
    "rating_of",
    "record_return_visit",
    "rectification_of",
    "rectifications",
    "reply",
]

SCORE_LABELS: Final[dict[int, str]] = {
    1: "非常不满意",
    2: "不满意",
    3: "基本满意",
    4: "满意",
    5: "非常满意",
}
"""The five levels of 好差评."""

POSITIVE_TAGS: Final = ("办事效率", "办事指南准确", "办事便捷", "服务态度", "材料精简", "一次办成")
NEGATIVE_TAGS: Final = ("多次跑动", "态度冷漠", "指南不清", "超时办理")
RATING_TAGS: Final = POSITIVE_TAGS + NEGATIVE_TAGS
"""Every tag a rating may carry (the applicant picks any of them, in any order)."""

COMMENT_MAX_LENGTH: Final = 500
RATEABLE_STATUSES: Final = frozenset({"completed", "delivered"})
BAD_SCORE_MAX: Final = 2
"""Scores up to this one open a rectification case (差评)."""
RECTIFICATION_WORKING_DAYS: Final = 15
RectificationState = Literal["open", "replied", "closed"]
RECTIFICATION_STATES: Final = get_args(RectificationState)
RECTIFICATION_LIST_LIMIT: Final = 200
REPLY_MAX_LENGTH: Final = 2000
RETURN_VISIT_MAX_LENGTH: Final = 2000

# --- errors -----------------------------------------------------------------------------------


class NotApplicant(Forbidden):
    type_slug = "not-applicant"
    title = "只有申请人本人可以评价该办件"


class NotRateable(Conflict):
    type_slug = "not-rateable"
    title = "办件尚未办结，暂不能评价"


class AlreadyRated(Conflict):
    type_slug = "already-rated"
    title = "该办件已评价，评价提交后不能修改"


class InvalidRating(ValidationFailed):
    type_slug = "invalid-rating"
    title = "评价内容有误"


class RectificationNotFound(NotFound):
    type_slug = "rectification-not-found"
    title = "找不到该整改单"


class NotYourRectification(Forbidden):
    type_slug = "rectification-of-other-department"
    title = "只能处理本部门的整改单"


class RectificationStateConflict(Conflict):
    type_slug = "rectification-state-conflict"
    title = "整改单当前状态不允许此操作"


class ReturnVisitRequired(Conflict):
    type_slug = "return-visit-required"
    title = "整改单须先回访申请人才能办结"


class InvalidRectificationInput(ValidationFailed):
    type_slug = "invalid-rectification-input"
    title = "整改内容有误"


# --- helpers ----------------------------------------------------------------------------------


def _field_error(pointer: str, detail: str) -> dict[str, str]:
    return FieldError(pointer=pointer, detail=detail, type="value_error").model_dump()


def _checked_rating(*, score: int, tags: Sequence[str], comment: str) -> tuple[list[str], str]:
    """The tags (duplicates dropped, order kept) and the trimmed comment, or InvalidRating
    naming every wrong field."""
    errors: list[dict[str, str]] = []
    # bool is an int subclass; True is not a score.
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORE_LABELS:
        errors.append(_field_error("/body/score", "评分应为 1 至 5 的整数"))
    unique: list[str] = []
    for index, tag in enumerate(tags):
        if tag not in RATING_TAGS:
            errors.append(_field_error(f"/body/tags/{index}", f"“{tag}”不是可选的评价标签"))
        elif tag not in unique:
            unique.append(tag)
    text = comment.strip()
    if len(text) > COMMENT_MAX_LENGTH:
        errors.append(
            _field_error(
                "/body/comment",
                f"评价内容不能超过 {COMMENT_MAX_LENGTH} 字（当前 {len(text)} 字）",
            )
        )
    if errors:
        raise InvalidRating("；".join(e["detail"] for e in errors), extra={"errors": errors})
    return unique, text


def _checked_text(value: str, *, pointer: str, what: str, limit: int) -> str:
    text = value.strip()
    detail: str | None = None
    if not text:
        detail = f"{what}不能为空"
    elif len(text) > limit:
        detail = f"{what}不能超过 {limit} 字（当前 {len(text)} 字）"
    if detail is not None:
        raise InvalidRectificationInput(detail, extra={"errors": [_field_error(pointer, detail)]})
    return text


# --- rating -----------------------------------------------------------------------------------


async def rate(
    session: AsyncSession,
    *,
    application: Application,
    rater_subject: str,
    score: int,
    tags: Sequence[str],
    comment: str,
    prompted: bool,
    now: datetime,
    calendar: WorkingDayCalendar,
) -> Rating:
    """Record the applicant's rating of a completed application; a score of 1–2 also opens
    a rectification case for the deciding department, due in 15 working days."""
    if application.applicant_subject != rater_subject:
        raise NotApplicant()
    if application.status not in RATEABLE_STATUSES:
        raise NotRateable("办件办结后才能评价")
    unique_tags, text = _checked_rating(score=score, tags=tags, comment=comment)
    rating = await repository.insert_rating(
        session,
        {
            "application_id": application.id,
            "department": application.department,
            "item_code": application.item_code,
            "score": score,
            "tags": unique_tags,
            "comment": text,
            "prompted": prompted,
            "rated_at": now,
        },
    )
    if rating is None:
        raise AlreadyRated("每个办件只能评价一次，评价提交后不能修改")
    await outbox.publish(
        session,
        RatingSubmitted(
            application_id=application.id,
            department=application.department,
            item_code=application.item_code,
            score=score,
            tags=unique_tags,
            prompted=prompted,
            rated_at=now.isoformat(),
        ),
    )
    if score <= BAD_SCORE_MAX:
        await _open_rectification(
            session, application=application, rating=rating, now=now, calendar=calendar
        )
    return rating


async def _open_rectification(
    session: AsyncSession,
    *,
    application: Application,
    rating: Rating,
    now: datetime,
    calendar: WorkingDayCalendar,
) -> Rectification:
    rectification = Rectification(
        id=str(uuid.uuid4()),
        application_id=application.id,
        department=application.department,
        opened_at=now,
        due_date=calendar.add_working_days(china_date(now), RECTIFICATION_WORKING_DAYS),
        status="open",
        reply="",
        return_visit="",
    )
    session.add(rectification)
    await session.flush()
    await outbox.publish(
        session,
        RectificationOpened(
            rectification_id=rectification.id,
            application_id=application.id,
            department=rectification.department,
            item_code=application.item_code,
            score=rating.score,
            opened_at=now.isoformat(),
            due_date=rectification.due_date.isoformat(),
        ),
    )
    return rectification


async def rating_of(session: AsyncSession, *, application_id: str) -> Rating | None:
    """The application's rating, if it was rated."""
    return await repository.rating_of(session, application_id)


# --- rectification ----------------------------------------------------------------------------


async def _own_rectification(
    session: AsyncSession, *, rectification_id: str, department: str
) -> Rectification:
    """The case, locked for the change, if it belongs to ``department``."""
    try:
        uuid.UUID(rectification_id)
    except ValueError:
        raise RectificationNotFound() from None
    rectification = await repository.rectification_by_id(session, rectification_id, lock=True)
    if rectification is None:
        raise RectificationNotFound()
    if rectification.department != department:
        raise NotYourRectification()
    return rectification


async def reply(
    session: AsyncSession,
    *,
    rectification_id: str,
    department: str,
    reply: str,
    now: datetime,
) -> Rectification:
    """The department's reply (整改情况): open → replied."""
    text = _checked_text(reply, pointer="/body/reply", what="整改答复", limit=REPLY_MAX_LENGTH)
    rectification = await _own_rectification(
        session, rectification_id=rectification_id, department=department
    )
    if rectification.status != "open":
        raise RectificationStateConflict("整改单已答复，不能再次答复")
    rectification.reply = text
    rectification.replied_at = now
    rectification.status = "replied"
    await session.flush()
    await outbox.publish(
        session,
        RectificationReplied(
            rectification_id=rectification.id,
            application_id=rectification.application_id,
            department=rectification.department,
            replied_at=now.isoformat(),
            due_date=rectification.due_date.isoformat(),
            on_time=china_date(now) <= rectification.due_date,
        ),
    )
    return rectification


async def record_return_visit(
    session: AsyncSession,
    *,
    rectification_id: str,
    department: str,
    note: str,
    now: datetime,
) -> Rectification:
    """The record of visiting the applicant back (回访) after the reply; once per case."""
    text = _checked_text(note, pointer="/body/note", what="回访记录", limit=RETURN_VISIT_MAX_LENGTH)
    rectification = await _own_rectification(
        session, rectification_id=rectification_id, department=department
    )
    if rectification.status == "open":
        raise RectificationStateConflict("整改单答复后才能登记回访")
    if rectification.status == "closed":
        raise RectificationStateConflict("整改单已办结，不能再登记回访")
    if rectification.return_visit:
        raise RectificationStateConflict("该整改单已登记回访")
    rectification.return_visit = text
    rectification.return_visited_at = now
    await session.flush()
    return rectification


async def close(
    session: AsyncSession,
    *,
    rectification_id: str,
    department: str,
    by: str,
    now: datetime,
) -> Rectification:
    """Close the case: replied (with a return visit recorded) → closed."""
    rectification = await _own_rectification(
        session, rectification_id=rectification_id, department=department
    )
    if rectification.status == "open":
        raise RectificationStateConflict("整改单尚未答复，不能办结")
    if rectification.status == "closed":
        raise RectificationStateConflict("整改单已办结")
    if not rectification.return_visit:
        raise ReturnVisitRequired("请先登记对申请人的回访情况，再办结整改单")
    rectification.status = "closed"
    rectification.closed_at = now
    rectification.closed_by = by
    await session.flush()
    await outbox.publish(
        session,
        RectificationClosed(
            rectification_id=rectification.id,
            application_id=rectification.application_id,
            department=rectification.department,
            closed_at=now.isoformat(),
            closed_by=by,
            due_date=rectification.due_date.isoformat(),
            on_time=china_date(now) <= rectification.due_date,
        ),
    )
    return rectification


async def overdue_rectifications(
    session: AsyncSession, *, today: date, department: str | None
) -> Sequence[Rectification]:
    """Cases not closed by their due date (due before ``today``), the most overdue first;
    all departments' when ``department`` is None (for managers)."""
    return await repository.overdue_rectifications(session, today=today, department=department)


async def rectification_of(session: AsyncSession, *, application_id: str) -> Rectification | None:
    """The case a bad rating of this application opened, if any."""
    return await repository.rectification_of_application(session, application_id)


@dataclass(frozen=True)
class RectificationView:
    """A case as its department's list shows it: the rating that opened it, the item, and
    where it stands against its deadline, in working days."""

    rectification: Rectification
    rating: Rating
    item_code: str
    item_name: str
    working_days_left: int | None
    """Working days from today to the deadline (0: due today), negative once it has passed;
    None for a closed case."""
    overdue: bool
    """Not closed and due before today (as :func:`overdue_rectifications` counts it)."""


def _standing(
    rectification: Rectification, *, today: date, calendar: WorkingDayCalendar
) -> tuple[int | None, bool]:
    if rectification.status == "closed":
        return None, False
    due = rectification.due_date
    if due >= today:
        return calendar.working_days_between(today, due), False
    # Overdue by the working days after the deadline up to today (0 if only a weekend passed).
    return -calendar.working_days_between(due, today), True


async def rectifications(
    session: AsyncSession,
    *,
    department: str | None,
    status: RectificationState | None,
    today: date,
    calendar: WorkingDayCalendar,
) -> list[RectificationView]:
    """The cases of ``department`` (every department's when None, for auditors), optionally
    of one state: those still to handle first, the earliest due first, then the closed ones."""
    rows = await repository.rectifications_with_ratings(
        session, department=department, status=status, limit=RECTIFICATION_LIST_LIMIT
    )
    views = []
    for rectification, rating, item_code, item_name in rows:
        left, overdue = _standing(rectification, today=today, calendar=calendar)
        views.append(
            RectificationView(
                rectification=rectification,
                rating=rating,
                item_code=item_code,
                item_name=item_name,
                working_days_left=left,
                overdue=overdue,
            )
        )
    return views
