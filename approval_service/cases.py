"""Cases: from acceptance to decision, automatic (秒批) or by a reviewer, on working days.

* ``application.submitted`` (intake) opens a case with what deciding needs (form, the
  applicant's age and region, the holder's encrypted name and ID number). When it carries its
  acceptance (受理 at submission) the case opens accepted, and a 秒批 item's is decided at once:
  the case is written once, in the state it ends in (:func:`open_accepted_case`);
* otherwise ``application.accepted`` starts the clock later: the due date is the item's
  committed working days from acceptance (provisional when the calendar does not know a year
  yet). For a 秒批 item the rule set is evaluated at once: approve, deny, or hand the case to a
  person (data missing or unavailable, a rule error, a ``refer`` rule);
* reviewers claim cases from their department's queue and act: approve, deny, request a
  correction (补正: the clock stops until the applicant resubmits), suspend for a special
  procedure (特别程序: the clock stops) and resume, or refuse acceptance (不予受理);
* every decision keeps its explanation; every action its actor, time and comment.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import repository, rules
from approval_service.events import (
    CaseAccepted,
    CaseApproved,
    CaseCompleted,
    CaseCorrectionRequested,
    CaseDeadlineWarning,
    CaseDenied,
    CaseNotAccepted,
    CaseOverdue,
    outbox,
)
from approval_service.models import Case, CaseAction, Decision, ItemVersionCopy
from contracts.approval.v1 import FORM_CONTEXT, HOLDER_CONTEXT, Completion
from contracts.events import Event
from contracts.sharing.api_v1 import LookupAnswer, Lookups
from wangban import personal_fields
from wangban.calendar import WorkingDayCalendar, china_date
from wangban.crypto import FieldCipher
from wangban.errors import Conflict, Forbidden, NotFound, ValidationFailed

STORED_FORM_CONTEXT = "approval.case.form"
"""Encryption context (plus the field's path) of the personal fields of ``case.form`` at rest
(:mod:`wangban.personal_fields`); migration ``approval_0004`` uses the same string."""
OPEN = frozenset({"open", "correction", "suspended"})
DEFAULT_STEPS: list[dict[str, Any]] = [
    {"name": "审查", "role": "reviewer"},
    {"name": "决定", "role": "reviewer"},
]
"""受理 (intake) → 审查 → 决定 → 办结, when the item does not configure its own steps."""
WARNING_SHARE = 0.8
"""A deadline warning goes out when this share of the committed working days is used."""

# --- errors -------------------------------------------------------------------------------------


class CaseNotFound(NotFound):
    type_slug = "case-not-found"
    title = "找不到该案件"


class ActionNotAllowed(Conflict):
    type_slug = "case-action-not-allowed"
    title = "案件当前状态不允许此操作"


class NotYourDepartment(Forbidden):
    type_slug = "not-your-department"
    title = "只能办理本部门的案件"


class ReasonRequired(ValidationFailed):
    type_slug = "reason-required"
    title = "请填写理由"


# --- opening and the clock ----------------------------------------------------------------------


def clear_form(case: Case, cipher: FieldCipher) -> dict[str, Any]:
    """The case's form with its personal fields decrypted: to evaluate rules (in memory), to
    pass the certificate its facts, and for the reviewers and auditors who read the case."""
    return dict(personal_fields.open_form(case.form, cipher=cipher, context=STORED_FORM_CONTEXT))


def _log(
    session: AsyncSession, case: Case, *, actor: str, action: str, at: datetime, comment: str = ""
) -> None:
    session.add(
        CaseAction(
            application_id=case.application_id, at=at, actor=actor, action=action, comment=comment
        )
    )


def _action(*, actor: str, action: str, at: datetime, comment: str = "") -> dict[str, Any]:
    """An action of a case not written yet (:func:`repository.open_case_once`)."""
    return {"at": at, "actor": actor, "action": action, "comment": comment}


def _row(record: Case | Decision) -> dict[str, Any]:
    """Every column of a record built in memory, to write it in one statement."""
    return {column.key: getattr(record, column.key) for column in type(record).__table__.columns}


def new_case(
    *,
    application_id: str,
    parent_id: str | None,
    item_version_id: str,
    item_code: str,
    department: str,
    applicant_kind: str,
    applicant_id_enc: str,
    applicant_name_enc: str,
    applicant_age: int | None,
    applicant_region: str | None,
    form: Mapping[str, Any],
    form_schema: Mapping[str, Any] | None,
    cipher: FieldCipher,
    submitted_at: datetime,
) -> Case:
    """The case a submitted application opens, in memory (in no session), every column set.

    The form is stored with the fields ``form_schema`` marks personal encrypted; without the
    item's schema (its version not received yet) the whole form is, as no field can be known
    not to be personal."""
    return Case(
        application_id=application_id,
        parent_id=parent_id,
        item_version_id=item_version_id,
        item_code=item_code,
        department=department,
        status="submitted",
        step="受理",
        steps=[],
        step_index=0,
        assignee=None,
        applicant_kind=applicant_kind,
        applicant_id_enc=applicant_id_enc,
        applicant_name_enc=applicant_name_enc,
        applicant_age=applicant_age,
        applicant_region=applicant_region,
        form=(
            personal_fields.seal(form, form_schema, cipher=cipher, context=STORED_FORM_CONTEXT)
            if form_schema is not None
            else personal_fields.seal_all(form, cipher=cipher, context=STORED_FORM_CONTEXT)
        ),
        submitted_at=submitted_at,
        accepted_at=None,
        committed_days=None,
        due_date=None,
        due_provisional=False,
        stopped_since=None,
        stopped_days=0,
        warned_at=None,
        overdue_at=None,
        decided_at=None,
    )


async def open_case(session: AsyncSession, *, case: Case) -> bool:
    """Write a submitted application's case (:func:`new_case`), waiting for its acceptance;
    once: returns ``False`` when the application has one already (a redelivered submission
    changes nothing)."""
    return await repository.open_case_once(
        session,
        case=_row(case),
        actions=[_action(actor="intake", action="submitted", at=case.submitted_at)],
    )


def _due(calendar: WorkingDayCalendar, case: Case) -> tuple[date | None, bool]:
    if case.accepted_at is None or case.committed_days is None:
        return None, False
    days = case.committed_days + case.stopped_days
    deadline = calendar.deadline(china_date(case.accepted_at), days)
    return deadline.due, deadline.provisional


def _start_clock(
    case: Case,
    *,
    item: ItemVersionCopy | None,
    accepted_at: datetime,
    calendar: WorkingDayCalendar,
) -> None:
    case.steps = list((item.content.get("workflow") if item is not None else None) or DEFAULT_STEPS)
    case.step_index = 0
    case.status, case.step, case.accepted_at = "open", case.steps[0]["name"], accepted_at
    if item is not None:
        case.committed_days = item.content.get("committed_days")
    case.due_date, case.due_provisional = _due(calendar, case)


async def accept(
    session: AsyncSession,
    *,
    case: Case,
    item: ItemVersionCopy | None,
    accepted_at: datetime,
    calendar: WorkingDayCalendar,
) -> Case:
    """``application.accepted`` for a case opened waiting for it: the clock starts."""
    if case.status != "submitted":
        return case  # already accepted: a redelivered event
    _start_clock(case, item=item, accepted_at=accepted_at, calendar=calendar)
    _log(session, case, actor="intake", action="accepted", at=accepted_at)
    await session.flush()
    return case


# --- 秒批 -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoDecision:
    outcome: Literal["approve", "deny", "refer"]
    decision: Decision


@dataclass(frozen=True)
class SharedFacts:
    """What the departments' data said for one case's rule set, and when asking began."""

    shared: dict[str, rules.SharedData]
    status: dict[str, Literal["found", "not_found", "unavailable"]]
    lookup_ids: list[str]
    started: float
    """``time.perf_counter()`` before the first lookup: the decision's timing includes them."""


def datasets_read(item: ItemVersionCopy) -> tuple[str, ...]:
    """The datasets the item's rule set reads: what 秒批 asks sharing for."""
    return rules.compile_rule_set(list(item.content.get("rules") or [])).datasets


async def look_up_shared_data(
    *,
    application_id: str,
    item_code: str,
    applicant_kind: str,
    applicant_id_enc: str,
    item: ItemVersionCopy,
    lookups: Lookups,
    cipher: FieldCipher,
) -> SharedFacts:
    """Ask sharing for what the rule set reads (the application as purpose), touching no table:
    the consumer calls this before its transaction, so no row lock waits on another service.
    The datasets are asked at once (one request each: sharing's lookup names one dataset)."""
    started = time.perf_counter()
    compiled = rules.compile_rule_set(list(item.content.get("rules") or []))
    subject_id = cipher.decrypt(applicant_id_enc, context=HOLDER_CONTEXT)

    async def ask(dataset: str) -> LookupAnswer:
        # Only the fields the rules read (data minimisation); none: "is there a record?".
        return await lookups.lookup(
            dataset=dataset,
            subject_kind=applicant_kind,
            subject_id=subject_id,
            fields=sorted(compiled.fields_read.get(dataset, ())),
            item_code=item_code,
            application_id=application_id,
        )

    answers = await asyncio.gather(*(ask(dataset) for dataset in compiled.datasets))
    shared: dict[str, rules.SharedData] = {}
    status: dict[str, Literal["found", "not_found", "unavailable"]] = {}
    lookup_ids: list[str] = []
    for dataset, answer in zip(compiled.datasets, answers, strict=True):
        if answer.lookup_id:
            lookup_ids.append(answer.lookup_id)
        if answer.status == "found":
            shared[dataset] = {name: answer.value(name) for name in answer.attributes}
            status[dataset] = "found"
        else:
            # Refused counts as unavailable: a policy gap must not deny anyone.
            shared[dataset] = rules.NOT_FOUND if answer.status == "not_found" else rules.UNAVAILABLE
            status[dataset] = "not_found" if answer.status == "not_found" else "unavailable"
    return SharedFacts(shared=shared, status=status, lookup_ids=lookup_ids, started=started)


def _evaluate(
    case: Case, *, item: ItemVersionCopy, facts: SharedFacts, cipher: FieldCipher, now: datetime
) -> tuple[Literal["approve", "deny", "refer"], Decision]:
    """The rule set on the form, the applicant and the shared data: the outcome, and the
    decision that records why (in memory)."""
    compiled = rules.compile_rule_set(list(item.content.get("rules") or []))
    context = rules.build_context(
        form=clear_form(case, cipher),
        applicant=rules.ApplicantFacts(
            kind="company" if case.applicant_kind == "company" else "person",
            age=case.applicant_age,
            region_code=case.applicant_region or "",
            assurance="real_person",
        ),
        shared=facts.shared,
        today=china_date(now),
    )
    evaluation = rules.evaluate(compiled, context, needs_status=facts.status)
    decision = Decision(
        id=str(uuid.uuid4()),
        application_id=case.application_id,
        kind="auto",
        outcome=evaluation.outcome,
        reason=evaluation.reason,
        item_version_id=case.item_version_id,
        rule_set_hash=compiled.digest,
        rule_results=[_result(r) for r in evaluation.results],
        lookup_ids=facts.lookup_ids,
        elapsed_ms=round((time.perf_counter() - facts.started) * 1000, 3),
        decided_by="auto",
        decided_at=now,
    )
    return evaluation.outcome, decision


def _referred(case: Case, *, now: datetime) -> CaseAccepted:
    """秒批 handed the case to a person: the department has it (``case.accepted``)."""
    return CaseAccepted(
        application_id=case.application_id, started_at=now.isoformat(), reviewer="auto"
    )


async def open_accepted_case(
    session: AsyncSession,
    *,
    case: Case,
    item: ItemVersionCopy | None,
    accepted_at: datetime,
    calendar: WorkingDayCalendar,
    cipher: FieldCipher,
    facts: SharedFacts | None,
    now: datetime | None = None,
) -> AutoDecision | None:
    """受理 at submission (``application.submitted`` carrying its acceptance): the case
    (:func:`new_case`) opens accepted, its clock started, and with ``facts`` (a 秒批 item's
    lookups, :func:`look_up_shared_data`) it is decided at once. Nothing is written and then
    changed: the case in the state it ends in, its decision and its actions go in one
    statement, once (``None`` when the application has a case already: a redelivery), then
    the one event the outcome calls for — ``case.approved`` carrying its completion (办结 at
    the decision, so no ``case.completed``), or ``case.denied`` and ``case.completed``, or
    ``case.accepted`` when it goes to a person. Without ``facts`` the case waits in its
    department's queue and nothing is published (as after a later acceptance)."""
    now = now or datetime.now(UTC)
    _start_clock(case, item=item, accepted_at=accepted_at, calendar=calendar)
    actions = [
        _action(actor="intake", action="submitted", at=case.submitted_at),
        _action(actor="intake", action="accepted", at=accepted_at),
    ]
    decided: AutoDecision | None = None
    events: list[Event] = []
    if facts is not None and item is not None:
        outcome, decision = _evaluate(case, item=item, facts=facts, cipher=cipher, now=now)
        decided = AutoDecision(outcome=outcome, decision=decision)
        if outcome == "refer":
            actions.append(
                _action(actor="auto", action="referred", at=now, comment=decision.reason)
            )
            events.append(_referred(case, now=now))
        else:
            approve = outcome == "approve"
            _conclude(case, approve=approve, now=now)
            actions.append(
                _action(
                    actor="auto",
                    action="approved" if approve else "denied",
                    at=now,
                    comment=decision.reason,
                )
            )
            events.extend(
                _decision_events(
                    case,
                    item=item,
                    approve=approve,
                    by="auto",
                    reason=decision.reason,
                    rule_results=decision.rule_results,
                    cipher=cipher,
                    calendar=calendar,
                    now=now,
                )
            )
    opened = await repository.open_case_once(
        session,
        case=_row(case),
        actions=actions,
        decision=_row(decided.decision) if decided is not None else None,
    )
    if not opened:
        return None
    for event in events:
        await outbox.publish(session, event)
    return decided


async def decide_automatically(
    session: AsyncSession,
    *,
    case: Case,
    item: ItemVersionCopy,
    facts: SharedFacts,
    cipher: FieldCipher,
    calendar: WorkingDayCalendar,
    now: datetime | None = None,
) -> AutoDecision:
    """秒批 of a case accepted after its submission (``application.accepted``): evaluate the
    rule set on the form, the applicant and the shared data looked up for it
    (:func:`look_up_shared_data`), and act on the outcome; a referral leaves the case in its
    department's queue."""
    now = now or datetime.now(UTC)
    outcome, decision = _evaluate(case, item=item, facts=facts, cipher=cipher, now=now)
    session.add(decision)
    if outcome == "refer":
        _log(session, case, actor="auto", action="referred", at=now, comment=decision.reason)
        await outbox.publish(session, _referred(case, now=now))
        await session.flush()
    else:
        await _decide(
            session,
            case=case,
            item=item,
            approve=outcome == "approve",
            by="auto",
            reason=decision.reason,
            rule_results=decision.rule_results,
            cipher=cipher,
            calendar=calendar,
            now=now,
        )
    return AutoDecision(outcome=outcome, decision=decision)


def _result(result: rules.RuleResult) -> dict[str, Any]:
    return {"name": result.name, "result": result.result, "message": result.message}


def _conclude(case: Case, *, approve: bool, now: datetime) -> None:
    case.status = "approved" if approve else "denied"
    case.step, case.decided_at = "办结", now


def _completion(case: Case, *, calendar: WorkingDayCalendar, now: datetime) -> Completion:
    """办结 now: the working days the case took (its clock's stops not counted), in time or not."""
    used = 0
    if case.accepted_at is not None:
        used = calendar.working_days_between(china_date(case.accepted_at), china_date(now))
        used = max(used - case.stopped_days, 0)
    return Completion(
        completed_at=now.isoformat(),
        working_days_used=used,
        on_time=case.due_date is None or china_date(now) <= case.due_date,
    )


def _decision_events(
    case: Case,
    *,
    item: ItemVersionCopy | None,
    approve: bool,
    by: str,
    reason: str,
    rule_results: Sequence[Mapping[str, Any]],
    cipher: FieldCipher,
    calendar: WorkingDayCalendar,
    now: datetime,
) -> list[Event]:
    """What a decision publishes; the case is complete (办结) with it. A machine's approval
    says so itself (``completion``); any other decision is followed by ``case.completed``."""
    summary = [{"name": str(r["name"]), "result": str(r["result"])} for r in rule_results]
    completion = _completion(case, calendar=calendar, now=now)
    if not approve:
        decided: Event = CaseDenied(
            application_id=case.application_id,
            decided_at=now.isoformat(),
            decided_by=by,
            reason=reason,
            rules=summary,
        )
    else:
        content = item.content if item is not None else {}
        decided = CaseApproved(
            application_id=case.application_id,
            item_id=item.item_id if item is not None else "",
            item_version_id=case.item_version_id,
            item_code=case.item_code,
            decided_at=now.isoformat(),
            decided_by=by,
            result_kind=str(content.get("result_kind") or "decision"),
            certificate_type=content.get("certificate_type"),
            certificate_facts_enc=cipher.encrypt(
                json.dumps(clear_form(case, cipher), ensure_ascii=False),
                context=FORM_CONTEXT,
            ),
            holder_kind=case.applicant_kind,
            holder_name_enc=case.applicant_name_enc,
            holder_id_enc=case.applicant_id_enc,
            establishes=content.get("establishes"),
            rules=summary,
            completion=completion if by == "auto" else None,
        )
        if by == "auto":
            return [decided]
    return [
        decided,
        CaseCompleted(
            application_id=case.application_id,
            outcome="approved" if approve else "denied",
            completed_at=completion.completed_at,
            working_days_used=completion.working_days_used,
            on_time=completion.on_time,
        ),
    ]


async def _decide(
    session: AsyncSession,
    *,
    case: Case,
    item: ItemVersionCopy | None,
    approve: bool,
    by: str,
    reason: str,
    rule_results: Sequence[Mapping[str, Any]],
    cipher: FieldCipher,
    calendar: WorkingDayCalendar,
    now: datetime,
) -> None:
    _conclude(case, approve=approve, now=now)
    _log(
        session, case, actor=by, action="approved" if approve else "denied", at=now, comment=reason
    )
    for event in _decision_events(
        case,
        item=item,
        approve=approve,
        by=by,
        reason=reason,
        rule_results=rule_results,
        cipher=cipher,
        calendar=calendar,
        now=now,
    ):
        await outbox.publish(session, event)
    await session.flush()


# --- the manual workflow ------------------------------------------------------------------------


def _check_department(case: Case, department: str | None) -> None:
    # Another department's case answers exactly like a missing one (as reading it does): a
    # 403 here would tell anyone with a reviewer role which application ids exist elsewhere.
    if department != case.department:
        raise CaseNotFound()


def current_role(case: Case) -> str:
    steps = case.steps or DEFAULT_STEPS
    return str(steps[min(case.step_index, len(steps) - 1)].get("role", "reviewer"))


def _check_role(case: Case, roles: frozenset[str]) -> None:
    role = current_role(case)
    if role not in roles:
        raise NotYourDepartment(f"「{case.step}」环节须由 {role} 角色办理")


def _is_last_step(case: Case) -> bool:
    return case.step_index >= len(case.steps or DEFAULT_STEPS) - 1


def _check_open(case: Case, *allowed: str) -> None:
    if case.status not in allowed:
        raise ActionNotAllowed(f"案件当前为「{case.status}」，不能执行此操作")


async def claim(
    session: AsyncSession,
    *,
    case: Case,
    reviewer: str,
    department: str | None,
    now: datetime,
    roles: frozenset[str] = frozenset({"reviewer"}),
) -> Case:
    _check_department(case, department)
    _check_open(case, "open")
    _check_role(case, roles)
    if case.assignee not in (None, reviewer):
        raise ActionNotAllowed(f"案件已由 {case.assignee} 认领")
    # The department takes the case up (case.accepted) once: at the first step's first claim.
    first_claim = case.assignee is None and case.step_index == 0
    case.assignee = reviewer
    _log(session, case, actor=reviewer, action="claimed", at=now)
    if first_claim:
        await outbox.publish(
            session,
            CaseAccepted(
                application_id=case.application_id, started_at=now.isoformat(), reviewer=reviewer
            ),
        )
    await session.flush()
    return case


def _check_assignee(case: Case, reviewer: str) -> None:
    if case.assignee != reviewer:
        raise ActionNotAllowed("请先认领该案件")


async def advance(
    session: AsyncSession,
    *,
    case: Case,
    reviewer: str,
    department: str | None,
    comment: str,
    now: datetime,
    roles: frozenset[str] = frozenset({"reviewer"}),
) -> Case:
    """This step is done (审查意见): the case moves to the next step and back to the queue."""
    _check_department(case, department)
    _check_open(case, "open")
    _check_role(case, roles)
    _check_assignee(case, reviewer)
    if _is_last_step(case):
        raise ActionNotAllowed(f"「{case.step}」是最后一个环节，请作出决定")
    _log(session, case, actor=reviewer, action=f"完成{case.step}", at=now, comment=comment)
    case.step_index += 1
    case.step = str((case.steps or DEFAULT_STEPS)[case.step_index]["name"])
    case.assignee = None
    await session.flush()
    return case


async def decide_manually(
    session: AsyncSession,
    *,
    case: Case,
    item: ItemVersionCopy | None,
    approve: bool,
    reviewer: str,
    department: str | None,
    reason: str,
    cipher: FieldCipher,
    calendar: WorkingDayCalendar,
    now: datetime,
    roles: frozenset[str] = frozenset({"reviewer"}),
) -> Case:
    _check_department(case, department)
    _check_open(case, "open")
    _check_role(case, roles)
    _check_assignee(case, reviewer)
    if not _is_last_step(case):
        raise ActionNotAllowed(f"当前为「{case.step}」环节，请先完成本环节再作决定")
    if not approve and not reason.strip():
        raise ReasonRequired("不予许可必须说明理由")
    session.add(
        Decision(
            id=str(uuid.uuid4()),
            application_id=case.application_id,
            kind="manual",
            outcome="approve" if approve else "deny",
            reason=reason,
            item_version_id=case.item_version_id,
            rule_set_hash=None,
            rule_results=[],
            lookup_ids=[],
            elapsed_ms=None,
            decided_by=reviewer,
            decided_at=now,
        )
    )
    await _decide(
        session,
        case=case,
        item=item,
        approve=approve,
        by=reviewer,
        reason=reason,
        rule_results=[],
        cipher=cipher,
        calendar=calendar,
        now=now,
    )
    return case


async def request_correction(
    session: AsyncSession,
    *,
    case: Case,
    reviewer: str,
    department: str | None,
    reason: str,
    materials: Sequence[str],
    now: datetime,
    roles: frozenset[str] = frozenset({"reviewer"}),
) -> Case:
    """补正: the clock stops until the applicant resubmits."""
    _check_department(case, department)
    _check_open(case, "open")
    _check_role(case, roles)
    _check_assignee(case, reviewer)
    if not reason.strip():
        raise ReasonRequired("要求补正必须说明需要补正的内容")
    case.status, case.stopped_since = "correction", china_date(now)
    _log(session, case, actor=reviewer, action="correction_requested", at=now, comment=reason)
    await outbox.publish(
        session,
        CaseCorrectionRequested(
            application_id=case.application_id,
            requested_at=now.isoformat(),
            reviewer=reviewer,
            reason=reason,
            materials=list(materials),
        ),
    )
    await session.flush()
    return case


def _restart_clock(case: Case, *, calendar: WorkingDayCalendar, today: date) -> None:
    if case.stopped_since is not None:
        case.stopped_days += calendar.working_days_between(case.stopped_since, today)
        case.stopped_since = None
    case.due_date, case.due_provisional = _due(calendar, case)


async def resubmitted(
    session: AsyncSession, *, case: Case, calendar: WorkingDayCalendar, now: datetime
) -> Case:
    """The applicant supplied what was asked: the case is back in the queue, the clock runs."""
    if case.status != "correction":
        return case
    case.status = "open"
    _restart_clock(case, calendar=calendar, today=china_date(now))
    _log(session, case, actor="applicant", action="resubmitted", at=now)
    await session.flush()
    return case


async def suspend(
    session: AsyncSession,
    *,
    case: Case,
    reviewer: str,
    department: str | None,
    procedure: str,
    now: datetime,
    roles: frozenset[str] = frozenset({"reviewer"}),
) -> Case:
    """特别程序 (on-site inspection, expert review, hearing): time does not count."""
    _check_department(case, department)
    _check_open(case, "open")
    _check_role(case, roles)
    _check_assignee(case, reviewer)
    if not procedure.strip():
        raise ReasonRequired("请说明特别程序的种类")
    case.status, case.stopped_since = "suspended", china_date(now)
    _log(session, case, actor=reviewer, action="suspended", at=now, comment=procedure)
    await session.flush()
    return case


async def resume(
    session: AsyncSession,
    *,
    case: Case,
    reviewer: str,
    department: str | None,
    calendar: WorkingDayCalendar,
    now: datetime,
    roles: frozenset[str] = frozenset({"reviewer"}),
) -> Case:
    _check_department(case, department)
    _check_open(case, "suspended")
    _check_role(case, roles)
    case.status = "open"
    _restart_clock(case, calendar=calendar, today=china_date(now))
    _log(session, case, actor=reviewer, action="resumed", at=now)
    await session.flush()
    return case


async def not_accept(
    session: AsyncSession,
    *,
    case: Case,
    reviewer: str,
    department: str | None,
    reason: str,
    now: datetime,
    roles: frozenset[str] = frozenset({"reviewer"}),
) -> Case:
    _check_department(case, department)
    _check_open(case, "open")
    _check_role(case, roles)
    if not reason.strip():
        raise ReasonRequired("不予受理必须说明理由")
    case.status, case.step, case.decided_at = "not_accepted", "办结", now
    _log(session, case, actor=reviewer, action="not_accepted", at=now, comment=reason)
    await outbox.publish(
        session,
        CaseNotAccepted(
            application_id=case.application_id, at=now.isoformat(), by=reviewer, reason=reason
        ),
    )
    await session.flush()
    return case


# --- deadlines ----------------------------------------------------------------------------------


DeadlineLight = Literal["green", "yellow", "red"]
"""绿灯 (in time), 黄灯 (the warning share of the committed working days used), 红灯 (overdue)."""


@dataclass(frozen=True)
class DeadlineState:
    light: DeadlineLight
    working_days_left: int
    """Working days from today up to the due date; negative once overdue."""


def _working_days_used(case: Case, *, calendar: WorkingDayCalendar, today: date) -> int:
    assert case.accepted_at is not None
    return calendar.working_days_between(china_date(case.accepted_at), today) - case.stopped_days


def deadline_state(
    case: Case, *, calendar: WorkingDayCalendar, today: date
) -> DeadlineState | None:
    """The queue's 红黄绿灯: the same thresholds the deadline watch warns and announces at.
    None while the clock does not run (not open, stopped, or no committed time)."""
    if case.status != "open" or case.due_date is None or case.accepted_at is None:
        return None
    if today > case.due_date:
        return DeadlineState("red", -calendar.working_days_between(case.due_date, today))
    left = calendar.working_days_between(today, case.due_date)
    committed = case.committed_days or 0
    used = _working_days_used(case, calendar=calendar, today=today)
    light: DeadlineLight = (
        "yellow" if committed > 0 and used >= WARNING_SHARE * committed else "green"
    )
    return DeadlineState(light, left)


async def watch_deadlines(
    session: AsyncSession, *, calendar: WorkingDayCalendar, now: datetime | None = None
) -> list[str]:
    """Warn at 80 % of the committed time, announce once overdue; stopped clocks wait."""
    now = now or datetime.now(UTC)
    today = china_date(now)
    announced = []
    for case in await repository.open_cases_with_deadline(session):
        if case.status != "open" or case.due_date is None or case.accepted_at is None:
            continue
        if today > case.due_date and case.overdue_at is None:
            case.overdue_at = now
            await outbox.publish(
                session,
                CaseOverdue(
                    application_id=case.application_id,
                    department=case.department,
                    due_date=case.due_date.isoformat(),
                ),
            )
            announced.append(case.application_id)
            continue
        total = (case.committed_days or 0) + case.stopped_days
        used = _working_days_used(case, calendar=calendar, today=today)
        if (
            case.warned_at is None
            and total > 0
            and used >= WARNING_SHARE * (case.committed_days or 0)
        ):
            case.warned_at = now
            await outbox.publish(
                session,
                CaseDeadlineWarning(
                    application_id=case.application_id,
                    department=case.department,
                    due_date=case.due_date.isoformat(),
                    provisional=case.due_provisional,
                ),
            )
            announced.append(case.application_id)
    await session.flush()
    return announced


async def case_for(session: AsyncSession, application_id: str, *, lock: bool = False) -> Case:
    case = await repository.case(session, application_id, lock=lock)
    if case is None:
        raise CaseNotFound()
    return case
