"""好差评: the applicant's rating of a completed application, and the department's
rectification of a bad one (reply, return visit, close)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from intake_service import ratings
from intake_service.api.deps import Manager, Reviewer, Shared, readable
from intake_service.applications.errors import ApplicationNotFound
from intake_service.schemas import (
    RatingIn,
    RatingOut,
    RectificationListItem,
    RectificationOut,
    TextIn,
)
from wangban.auth import AUDITOR, CurrentIdentity
from wangban.calendar import china_date
from wangban.db import UnitOfWork
from wangban.errors import problem_responses

router = APIRouter(tags=["applications"])
staff_router = APIRouter(prefix="/staff", tags=["window and review"])


@router.post(
    "/applications/{application_id}/rating",
    status_code=201,
    summary="Rate a completed application (好差评); once, immutable",
    responses=problem_responses(
        ApplicationNotFound,
        ratings.NotRateable,
        ratings.AlreadyRated,
        ratings.InvalidRating,
    ),
)
async def rate(
    application_id: str,
    body: RatingIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
) -> RatingOut:
    application = await readable(session, identity, application_id)
    if identity.kind == "staff":
        raise ApplicationNotFound()  # staff never rate; for them there is nothing to rate here
    rating = await ratings.rate(
        session,
        application=application,
        rater_subject=identity.subject,
        score=body.score,
        tags=body.tags,
        comment=body.comment,
        prompted=body.prompted,
        now=datetime.now(UTC),
        calendar=runtime.calendar,
    )
    return RatingOut.model_validate(rating)


@staff_router.get("/rectifications/overdue", summary="Overdue rectifications (for managers)")
async def overdue_rectifications(session: UnitOfWork, member: Manager) -> list[RectificationOut]:
    department = None if member.has_any_role(AUDITOR) else (member.department or "-")
    rows = await ratings.overdue_rectifications(
        session, today=china_date(datetime.now(UTC)), department=department
    )
    return [RectificationOut.model_validate(r) for r in rows]


@staff_router.get(
    "/rectifications",
    summary="My department's rectifications (all departments' for auditors), by state",
)
async def list_rectifications(
    session: UnitOfWork,
    member: Manager,
    runtime: Shared,
    status: ratings.RectificationState | None = None,
) -> list[RectificationListItem]:
    department = None if member.has_any_role(AUDITOR) else (member.department or "-")
    views = await ratings.rectifications(
        session,
        department=department,
        status=status,
        today=china_date(datetime.now(UTC)),
        calendar=runtime.calendar,
    )
    return [
        RectificationListItem(
            **RectificationOut.model_validate(view.rectification).model_dump(),
            score=view.rating.score,
            score_label=ratings.SCORE_LABELS[view.rating.score],
            tags=view.rating.tags,
            comment=view.rating.comment,
            rated_at=view.rating.rated_at,
            item_code=view.item_code,
            item_name=view.item_name,
            working_days_left=view.working_days_left,
            overdue=view.overdue,
        )
        for view in views
    ]


RECTIFICATION_ERRORS = (
    ratings.RectificationNotFound,
    ratings.NotYourRectification,
    ratings.RectificationStateConflict,
    ratings.InvalidRectificationInput,
)


@staff_router.post(
    "/rectifications/{rectification_id}/reply",
    summary="The department's reply to a bad rating",
    responses=problem_responses(*RECTIFICATION_ERRORS),
)
async def reply_rectification(
    rectification_id: str, body: TextIn, session: UnitOfWork, reviewer: Reviewer
) -> RectificationOut:
    row = await ratings.reply(
        session,
        rectification_id=rectification_id,
        department=reviewer.department or "-",
        reply=body.text,
        now=datetime.now(UTC),
    )
    return RectificationOut.model_validate(row)


@staff_router.post(
    "/rectifications/{rectification_id}/return-visit",
    summary="Record the return visit (回访)",
    responses=problem_responses(*RECTIFICATION_ERRORS),
)
async def return_visit(
    rectification_id: str, body: TextIn, session: UnitOfWork, reviewer: Reviewer
) -> RectificationOut:
    row = await ratings.record_return_visit(
        session,
        rectification_id=rectification_id,
        department=reviewer.department or "-",
        note=body.text,
        now=datetime.now(UTC),
    )
    return RectificationOut.model_validate(row)


@staff_router.post(
    "/rectifications/{rectification_id}/close",
    summary="Close a rectification (after reply and return visit)",
    responses=problem_responses(*RECTIFICATION_ERRORS, ratings.ReturnVisitRequired),
)
async def close_rectification(
    rectification_id: str, session: UnitOfWork, reviewer: Reviewer
) -> RectificationOut:
    row = await ratings.close(
        session,
        rectification_id=rectification_id,
        department=reviewer.department or "-",
        by=reviewer.subject,
        now=datetime.now(UTC),
    )
    return RectificationOut.model_validate(row)
