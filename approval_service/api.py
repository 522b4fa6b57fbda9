"""Routes of the approval service: parse, authorise, call, return.

Reviewers act on their own department's cases (claim first); auditors read every case and its
explanation; catalogue administrators dry-run rule sets before publishing them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import cases, replay, repository, rules
from approval_service.calendar import calendar_for
from approval_service.models import Case
from approval_service.schemas import (
    ActionOut,
    CaseOut,
    CaseSummary,
    CommentIn,
    CorrectionIn,
    DecisionOut,
    DryRunIn,
    EvaluationOut,
    ReasonIn,
    ReplayIn,
    RuleResultOut,
    SuspendIn,
)
from wangban.auth import (
    APPROVER,
    AUDITOR,
    CATALOG_ADMIN,
    PLATFORM_CATALOG_ADMIN,
    REVIEWER,
    Identity,
    require_roles,
)
from wangban.calendar import WorkingDayCalendar, china_date
from wangban.crypto import FieldCipher
from wangban.db import ReadSession, UnitOfWork
from wangban.errors import ValidationFailed, problem_responses

router = APIRouter(prefix="/cases", tags=["cases"])
rule_router = APIRouter(prefix="/rules", tags=["秒批 rules"])

Reviewer = Annotated[Identity, Depends(require_roles(REVIEWER, APPROVER))]
Reader = Annotated[Identity, Depends(require_roles(REVIEWER, APPROVER, AUDITOR))]
CatalogAdmin = Annotated[Identity, Depends(require_roles(CATALOG_ADMIN))]
CatalogAuthor = Annotated[Identity, Depends(require_roles(CATALOG_ADMIN, PLATFORM_CATALOG_ADMIN))]


async def _form_cipher(request: Request) -> FieldCipher:
    """The platform field key, built once per app: case forms keep personal fields encrypted."""
    state = request.app.state
    if not hasattr(state, "approval_cipher"):
        state.approval_cipher = FieldCipher.from_settings(state.settings)
    cipher: FieldCipher = state.approval_cipher
    return cipher


Cipher = Annotated[FieldCipher, Depends(_form_cipher)]


async def _working_day_calendar(request: Request, session: UnitOfWork) -> WorkingDayCalendar:
    return await calendar_for(session, request.app.state.settings)


Calendar = Annotated[WorkingDayCalendar, Depends(_working_day_calendar)]

CASE_ERRORS = (
    cases.CaseNotFound,
    cases.NotYourDepartment,
    cases.ActionNotAllowed,
    cases.ReasonRequired,
)


class InvalidRuleSet(ValidationFailed):
    type_slug = "invalid-rule-set"
    title = "秒批规则有误"


def _known_form(application_id: str) -> str:
    """Case ids are UUIDs: anything else names no case (a 404, as for an unknown one) rather
    than reaching the database, which refuses it as a UUID (a 500)."""
    try:
        return str(uuid.UUID(application_id))
    except ValueError:
        raise cases.CaseNotFound() from None


async def _case(session: AsyncSession, application_id: str) -> Case:
    return await cases.case_for(session, _known_form(application_id), lock=True)


def _summary(case: Case, calendar: WorkingDayCalendar) -> CaseSummary:
    """The case in a queue, with its 红黄绿灯 as of today (China's date)."""
    summary = CaseSummary.model_validate(case)
    state = cases.deadline_state(case, calendar=calendar, today=china_date(_now()))
    if state is not None:
        summary.deadline_light = state.light
        summary.working_days_left = state.working_days_left
    return summary


async def _out(
    session: AsyncSession, case: Case, cipher: FieldCipher, calendar: WorkingDayCalendar
) -> CaseOut:
    """The case as its reviewers and auditors see it: the form's personal fields, encrypted at
    rest, in clear."""
    return CaseOut(
        **_summary(case, calendar).model_dump(),
        form=cases.clear_form(case, cipher),
        decisions=[
            DecisionOut.model_validate(d)
            for d in await repository.decisions(session, case.application_id)
        ],
        actions=[
            ActionOut.model_validate(a)
            for a in await repository.actions(session, case.application_id)
        ],
    )


@router.get("/queue", summary="My department's cases, soonest due first")
async def queue(
    session: UnitOfWork, reviewer: Reviewer, calendar: Calendar, status: str | None = "open"
) -> list[CaseSummary]:
    rows = await repository.queue(
        session, department=reviewer.department or "-", status=status, limit=200
    )
    # The tasks this person may take: cases whose current step is for one of their roles.
    return [_summary(r, calendar) for r in rows if cases.current_role(r) in reviewer.roles]


@router.get(
    "/{application_id}",
    summary="A case with its decisions (and why) and every action",
    responses=problem_responses(cases.CaseNotFound),
)
async def get_case(
    application_id: str, session: UnitOfWork, reader: Reader, cipher: Cipher, calendar: Calendar
) -> CaseOut:
    case = await cases.case_for(session, _known_form(application_id))
    if not reader.has_any_role(AUDITOR) and reader.department != case.department:
        raise cases.CaseNotFound()
    return await _out(session, case, cipher, calendar)


def _now() -> datetime:
    return datetime.now(UTC)


async def _decide(
    session: AsyncSession,
    application_id: str,
    reviewer: Identity,
    cipher: FieldCipher,
    calendar: WorkingDayCalendar,
    *,
    approve: bool,
    reason: str,
) -> CaseOut:
    case = await _case(session, application_id)
    await cases.decide_manually(
        session,
        case=case,
        item=await repository.item_version(session, case.item_version_id),
        approve=approve,
        reviewer=reviewer.subject,
        department=reviewer.department,
        reason=reason,
        cipher=cipher,
        calendar=calendar,
        now=_now(),
        roles=reviewer.roles,
    )
    return await _out(session, case, cipher, calendar)


@router.post(
    "/{application_id}/claim",
    summary="Take a case from the queue",
    responses=problem_responses(*CASE_ERRORS),
)
async def claim(
    application_id: str, session: UnitOfWork, reviewer: Reviewer, cipher: Cipher, calendar: Calendar
) -> CaseOut:
    case = await _case(session, application_id)
    await cases.claim(
        session,
        case=case,
        reviewer=reviewer.subject,
        department=reviewer.department,
        now=_now(),
        roles=reviewer.roles,
    )
    return await _out(session, case, cipher, calendar)


@router.post(
    "/{application_id}/advance",
    summary="This step is done (审查意见): on to the next step of the item's workflow",
    responses=problem_responses(*CASE_ERRORS),
)
async def advance(
    application_id: str,
    body: CommentIn,
    session: UnitOfWork,
    reviewer: Reviewer,
    cipher: Cipher,
    calendar: Calendar,
) -> CaseOut:
    case = await _case(session, application_id)
    await cases.advance(
        session,
        case=case,
        reviewer=reviewer.subject,
        department=reviewer.department,
        comment=body.comment,
        now=_now(),
        roles=reviewer.roles,
    )
    return await _out(session, case, cipher, calendar)


@router.post(
    "/{application_id}/approve", summary="准予 (approve)", responses=problem_responses(*CASE_ERRORS)
)
async def approve(
    application_id: str,
    body: CommentIn,
    session: UnitOfWork,
    reviewer: Reviewer,
    cipher: Cipher,
    calendar: Calendar,
) -> CaseOut:
    return await _decide(
        session, application_id, reviewer, cipher, calendar, approve=True, reason=body.comment
    )


@router.post(
    "/{application_id}/deny",
    summary="不予许可 (deny, with reason)",
    responses=problem_responses(*CASE_ERRORS),
)
async def deny(
    application_id: str,
    body: ReasonIn,
    session: UnitOfWork,
    reviewer: Reviewer,
    cipher: Cipher,
    calendar: Calendar,
) -> CaseOut:
    return await _decide(
        session, application_id, reviewer, cipher, calendar, approve=False, reason=body.reason
    )


@router.post(
    "/{application_id}/correction",
    summary="补正: ask the applicant to correct or add (the clock stops)",
    responses=problem_responses(*CASE_ERRORS),
)
async def correction(
    application_id: str,
    body: CorrectionIn,
    session: UnitOfWork,
    reviewer: Reviewer,
    cipher: Cipher,
    calendar: Calendar,
) -> CaseOut:
    case = await _case(session, application_id)
    await cases.request_correction(
        session,
        case=case,
        reviewer=reviewer.subject,
        department=reviewer.department,
        reason=body.reason,
        materials=body.materials,
        now=_now(),
        roles=reviewer.roles,
    )
    return await _out(session, case, cipher, calendar)


@router.post(
    "/{application_id}/suspend",
    summary="特别程序: suspend for inspection, expert review or hearing (time does not count)",
    responses=problem_responses(*CASE_ERRORS),
)
async def suspend(
    application_id: str,
    body: SuspendIn,
    session: UnitOfWork,
    reviewer: Reviewer,
    cipher: Cipher,
    calendar: Calendar,
) -> CaseOut:
    case = await _case(session, application_id)
    await cases.suspend(
        session,
        case=case,
        reviewer=reviewer.subject,
        department=reviewer.department,
        procedure=f"{body.procedure}：{body.comment}" if body.comment else body.procedure,
        now=_now(),
        roles=reviewer.roles,
    )
    return await _out(session, case, cipher, calendar)


@router.post(
    "/{application_id}/resume",
    summary="Resume after a special procedure",
    responses=problem_responses(*CASE_ERRORS),
)
async def resume(
    application_id: str,
    session: UnitOfWork,
    reviewer: Reviewer,
    request: Request,
    cipher: Cipher,
    calendar: Calendar,
) -> CaseOut:
    case = await _case(session, application_id)
    await cases.resume(
        session,
        case=case,
        reviewer=reviewer.subject,
        department=reviewer.department,
        calendar=calendar,
        now=_now(),
        roles=reviewer.roles,
    )
    return await _out(session, case, cipher, calendar)


@router.post(
    "/{application_id}/not-accept",
    summary="不予受理 (with reason)",
    responses=problem_responses(*CASE_ERRORS),
)
async def not_accept(
    application_id: str,
    body: ReasonIn,
    session: UnitOfWork,
    reviewer: Reviewer,
    cipher: Cipher,
    calendar: Calendar,
) -> CaseOut:
    case = await _case(session, application_id)
    await cases.not_accept(
        session,
        case=case,
        reviewer=reviewer.subject,
        department=reviewer.department,
        reason=body.reason,
        now=_now(),
        roles=reviewer.roles,
    )
    return await _out(session, case, cipher, calendar)


@rule_router.post(
    "/dry-run",
    summary="Evaluate a rule set against a sample applicant and form (试运行, before publishing)",
    responses=problem_responses(InvalidRuleSet),
)
async def dry_run(body: DryRunIn, _: CatalogAdmin) -> EvaluationOut:
    shared: dict[str, rules.SharedData] = {
        dataset: (
            rules.UNAVAILABLE
            if value == "unavailable"
            else rules.NOT_FOUND
            if value is None
            else value
        )
        for dataset, value in body.shared.items()
    }
    try:
        compiled = rules.compile_rule_set(body.rules)
        evaluation = rules.dry_run(
            body.rules,
            form=body.form,
            applicant=rules.ApplicantFacts(
                kind=body.applicant.kind,
                age=body.applicant.age,
                region_code=body.applicant.region_code,
                assurance=body.applicant.assurance,
            ),
            shared=shared,
            today=body.today or datetime.now(UTC).date(),
        )
    except rules.RuleSetInvalid as exc:
        raise InvalidRuleSet(str(exc)) from exc
    return EvaluationOut(
        outcome=evaluation.outcome,
        reason=evaluation.reason,
        deciding_rule=evaluation.deciding_rule,
        results=[
            RuleResultOut(name=r.name, result=r.result, message=r.message, detail=r.detail)
            for r in evaluation.results
        ],
        missing=dict(evaluation.missing),
        rule_set_digest=evaluation.rule_set_digest,
        undeclared_needs={k: list(v) for k, v in compiled.undeclared_needs.items()},
    )


@rule_router.post(
    "/replay",
    summary="Replay a proposed rule set on the item's recent decided cases (four-eyes review)",
    description="Called by the catalog when a rule change is submitted for review, with the "
    "author's identity. Only the caller's department's cases count (every department's for "
    "the platform catalogue role). Answers counts and the cases whose outcome would change "
    "(application ids and outcomes, nothing personal).",
    responses=problem_responses(InvalidRuleSet),
)
async def replay_rules(
    body: ReplayIn, session: ReadSession, author: CatalogAuthor, cipher: Cipher
) -> dict[str, Any]:
    platform = author.has_any_role(PLATFORM_CATALOG_ADMIN)
    try:
        result = await replay.replay(
            session,
            item_code=body.item_code,
            rule_set=body.rules,
            cipher=cipher,
            # A department's author sees its own cases only; no department, none at all.
            department=None if platform else (author.department or "-"),
        )
    except rules.RuleSetInvalid as exc:
        raise InvalidRuleSet(str(exc)) from exc
    return result.summary()
