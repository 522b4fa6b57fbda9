"""From draft to result: the material plan, submission, acceptance (受理) or not, withdrawal,
completion and the e-certificate's delivery (送达)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.sharing.api_v1 import SharedResolution
from intake_service import catalog_copies, repository
from intake_service.applications.creation import Keys, MaterialChoice
from intake_service.applications.errors import (
    AlreadySubmitted,
    InvalidForm,
    ItemVersionNotAvailable,
    MaterialsIncomplete,
    TransitionNotAllowed,
)
from intake_service.applications.forms import clear_form, form_errors
from intake_service.applications.grant_limits import check_grant_limit
from intake_service.applications.states import DECIDED, FINAL, ActorKind, move, transition
from intake_service.events import (
    FORM_CONTEXT,
    SUBJECT_CONTEXT,
    Acceptance,
    ApplicationAccepted,
    ApplicationCompleted,
    ApplicationNotAccepted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    MaterialOutcome,
    outbox,
)
from intake_service.models import (
    Application,
    ApplicationMaterial,
    ItemVersionCopy,
    TimelineEntry,
)
from wangban.calendar import WorkingDayCalendar, china_date
from wangban.errors import ValidationFailed


def _check_version_open(item: ItemVersionCopy | None) -> ItemVersionCopy:
    if item is None or item.withdrawn_at is not None:
        raise ItemVersionNotAvailable()
    return item


def asks_sharing(item: ItemVersionCopy) -> bool:
    """Whether a material of the item comes from data sharing or the certificate library
    (免提交): only then is the sharing service asked to resolve the materials."""
    return any(
        str(m.get("source", "upload")).startswith(("shared:", "certificate:"))
        for m in item.content.get("materials", [])
    )


def plan_materials(
    *,
    item: ItemVersionCopy,
    shared: Sequence[SharedResolution],
    choices: Sequence[MaterialChoice],
    owned_files: Mapping[str, str],
) -> tuple[list[ApplicationMaterial], list[str]]:
    """How each material is met, and the names of required ones that are not (and may not be
    tolerated). ``owned_files`` maps the applicant's file ids to their material names."""
    by_index = {c.index: c for c in choices}
    resolved = {r.index: r for r in shared}
    rows, missing = [], []
    for index, material in enumerate(item.content.get("materials", [])):
        name = str(material.get("name", ""))
        source = str(material.get("source", "upload"))
        required = bool(material.get("required", True))
        tolerable = bool(material.get("may_be_missing", False))
        choice = by_index.get(index)
        status, kind, evidence, note = "missing", None, None, ""
        answer = resolved.get(index)
        if answer is not None and answer.status == "satisfied":
            status = "shared" if answer.evidence_kind == "lookup" else "certificate"
            kind, evidence = answer.evidence_kind, answer.evidence_id
            note = answer.message  # which department's data or which certificate stands in
        elif source == "waived":
            status = "waived"
        elif choice is not None and choice.file_id is not None:
            if choice.file_id not in owned_files:
                raise MaterialsIncomplete(f"材料「{name}」所选文件不存在")
            status = "uploaded" if owned_files[choice.file_id] == name else "reused"
            kind, evidence = "file", choice.file_id
        elif choice is not None and choice.commitment:
            if source != "commitment":
                raise MaterialsIncomplete(f"材料「{name}」不适用告知承诺，请提交材料")
            status, kind = "commitment", "commitment"
        elif source == "commitment":
            status = "missing"
            note = "请签署告知承诺书"
        if answer is not None and status == "missing" and answer.message:
            note = answer.message
        if status == "missing" and required:
            if tolerable:
                status = "tolerated"
            else:
                missing.append(name)
        rows.append(
            ApplicationMaterial(
                id=str(uuid.uuid4()),
                index=index,
                name=name,
                source=source,
                required=required,
                may_be_missing=tolerable,
                status=status,
                evidence_kind=kind,
                evidence_id=evidence,
                note=note,
            )
        )
    return rows, missing


@dataclass(frozen=True)
class Submission:
    """A submission as it is written: the application (changed in memory to its final state,
    accepted at once when nothing needs a person's check), its material rows, its new timeline
    entries and ``application.submitted``, which carries the acceptance when there was one."""

    materials: list[ApplicationMaterial]
    timeline: list[TimelineEntry]
    event: ApplicationSubmitted


async def prepare_submission(
    session: AsyncSession,
    *,
    application: Application,
    item: ItemVersionCopy,
    shared: Sequence[SharedResolution],
    choices: Sequence[MaterialChoice],
    actor_kind: ActorKind,
    actor: str,
    keys: Keys,
    calendar: WorkingDayCalendar,
    now: datetime,
    form: Mapping[str, Any] | None = None,
) -> Submission:
    """Check the form (``form``: the application's in clear, when the caller has it) and the
    materials and submit the draft ``application`` in memory: nothing is written, and nothing
    read but the applicant's files a choice names. Accepted at once when nothing needs a
    person's check (no uploads, nothing tolerated) or when a window clerk files it."""
    if application.status != "draft":
        raise AlreadySubmitted()
    clear = clear_form(application, keys.cipher) if form is None else form
    errors = form_errors(item.content.get("form_schema"), clear)
    if errors:
        raise InvalidForm(
            f"申请表有 {len(errors)} 处需要修改",
            extra={"errors": [e.model_dump() for e in errors]},
        )
    rows, missing = plan_materials(
        item=item,
        shared=shared,
        choices=choices,
        owned_files=await _chosen_files(session, application=application, choices=choices),
    )
    if missing:
        raise MaterialsIncomplete(f"还需提交：{'、'.join(missing)}", extra={"missing": missing})
    for row in rows:
        row.application_id = application.id
    timeline = [transition(application, to="submitted", actor_kind=actor_kind, actor=actor, at=now)]
    at_window = application.channel == "window"
    acceptance = None
    if at_window or not any(r.status in ("uploaded", "reused", "tolerated") for r in rows):
        # A window clerk checks the materials at the counter; online, nothing to check by hand.
        by = actor if at_window else "intake"
        by_kind: ActorKind = "staff" if at_window else "system"
        timeline.append(
            transition(application, to="accepted", actor_kind=by_kind, actor=by, at=now)
        )
        acceptance = _accepted(application, item=item, rows=rows, by=by, calendar=calendar, now=now)
    event = _submitted_event(application, rows, keys=keys, form=clear, acceptance=acceptance)
    return Submission(materials=rows, timeline=timeline, event=event)


async def _chosen_files(
    session: AsyncSession, *, application: Application, choices: Sequence[MaterialChoice]
) -> dict[str, str]:
    """The applicant's files among those ``choices`` name, by id: their material names. No
    read when no choice names a file (commitments, shared data)."""
    wanted = {c.file_id for c in choices if c.file_id is not None and _is_uuid(c.file_id)}
    if not wanted:
        return {}
    return {
        f.id: f.material_name
        for f in await repository.files_of(
            session, owner_subject=application.applicant_subject, file_ids=wanted
        )
    }


def _is_uuid(value: str) -> bool:
    """File ids are UUIDs: another string names no file (and would not compare to the column)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def submit(
    session: AsyncSession,
    *,
    application: Application,
    shared: Sequence[SharedResolution],
    choices: Sequence[MaterialChoice],
    actor_kind: ActorKind,
    actor: str,
    keys: Keys,
    calendar: WorkingDayCalendar,
    now: datetime | None = None,
) -> Application:
    """Submit a draft the session has (a draft submitted later, a bundle's member): checked and
    moved in memory (:func:`prepare_submission`), then written by one flush: the row updated
    once, its materials and timeline entries inserted, one event."""
    now = now or datetime.now(UTC)
    if application.status != "draft":
        raise AlreadySubmitted()
    # Read from the row: whether the version may still be applied for changes (withdrawal).
    item = _check_version_open(
        await repository.item_version(session, application.item_version_id or "")
    )
    await check_grant_limit(session, application=application, item=item, now=now)
    submission = await prepare_submission(
        session,
        application=application,
        item=item,
        shared=shared,
        choices=choices,
        actor_kind=actor_kind,
        actor=actor,
        keys=keys,
        calendar=calendar,
        now=now,
    )
    session.add_all([*submission.materials, *submission.timeline])
    await outbox.publish(session, submission.event)
    await session.flush()
    return application


def _accepted(
    application: Application,
    *,
    item: ItemVersionCopy | None,
    rows: Sequence[ApplicationMaterial],
    by: str,
    calendar: WorkingDayCalendar,
    now: datetime,
) -> Acceptance:
    """受理 of ``application`` (already moved to ``accepted``), in memory: who, the due date and,
    with materials tolerated as missing (容缺), their deadline: the longest of their 容缺时限,
    counted in working days from today."""
    application.accepted_by = by
    today = china_date(now)
    tolerated = [r for r in rows if r.status == "tolerated"]
    if tolerated and item is not None:
        limits = {
            str(m.get("name")): int(m.get("supplement_days") or 5)
            for m in item.content.get("materials", [])
        }
        days = max(limits.get(r.name, 5) for r in tolerated)
        application.tolerated_until = calendar.add_working_days(today, days)
    if application.committed_days is not None:
        application.due_date = calendar.add_working_days(today, application.committed_days)
    return Acceptance(
        accepted_at=now.isoformat(),
        accepted_by=by,
        accepting_window=application.accepting_window,
        accepting_region=application.accepting_region,
        due_date=application.due_date.isoformat() if application.due_date else None,
        tolerated_until=(
            application.tolerated_until.isoformat() if application.tolerated_until else None
        ),
        tolerated_materials=[r.name for r in tolerated],
    )


def _submitted_event(
    application: Application,
    rows: Sequence[ApplicationMaterial],
    *,
    keys: Keys,
    form: Mapping[str, Any],
    acceptance: Acceptance | None,
) -> ApplicationSubmitted:
    return ApplicationSubmitted(
        application_id=application.id,
        parent_id=application.parent_id,
        item_version_id=application.item_version_id or "",
        item_code=application.item_code,
        item_name=application.item_name,
        department=application.department,
        channel=application.channel,
        applicant_kind=application.applicant_kind,
        applicant_subject_enc=keys.cipher.encrypt(
            application.applicant_subject, context=SUBJECT_CONTEXT
        ),
        applicant_id_enc=application.applicant_id_enc,
        applicant_name_enc=application.applicant_name_enc,
        form_enc=keys.cipher.encrypt(json.dumps(form, ensure_ascii=False), context=FORM_CONTEXT),
        materials=[
            MaterialOutcome(
                name=r.name,
                source=r.source,
                status=r.status,
                evidence_kind=r.evidence_kind,
                evidence_id=r.evidence_id,
            )
            for r in rows
        ],
        submitted_at=application.submitted_at.isoformat() if application.submitted_at else "",
        acceptance=acceptance,
    )


async def accept(
    session: AsyncSession,
    *,
    application: Application,
    actor_kind: ActorKind,
    actor: str,
    calendar: WorkingDayCalendar,
    now: datetime | None = None,
) -> Application:
    """受理 by a clerk or reviewer of an application submitted with materials to check:
    ``application.accepted``, which approval starts from."""
    now = now or datetime.now(UTC)
    rows = await repository.materials(session, application.id)
    item = await catalog_copies.version_content(session, application.item_version_id or "")
    await move(session, application, to="accepted", actor_kind=actor_kind, actor=actor, at=now)
    acceptance = _accepted(application, item=item, rows=rows, by=actor, calendar=calendar, now=now)
    await session.flush()
    await outbox.publish(
        session,
        ApplicationAccepted(
            application_id=application.id,
            item_version_id=application.item_version_id or "",
            item_code=application.item_code,
            **acceptance.model_dump(),
        ),
    )
    return application


async def not_accept(
    session: AsyncSession,
    *,
    application: Application,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Application:
    now = now or datetime.now(UTC)
    if not reason.strip():
        raise ValidationFailed("不予受理必须说明理由")
    await move(
        session,
        application,
        to="not_accepted",
        actor_kind="staff",
        actor=actor,
        at=now,
        note=reason,
    )
    await outbox.publish(
        session,
        ApplicationNotAccepted(
            application_id=application.id,
            item_code=application.item_code,
            at=now.isoformat(),
            reason=reason,
        ),
    )
    return application


def may_withdraw(application: Application) -> bool:
    """The applicant may withdraw until a decision (or an end) is reached."""
    return application.status not in DECIDED and application.status not in FINAL


async def withdraw(
    session: AsyncSession,
    *,
    application: Application,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> Application:
    """The applicant withdraws before a decision; a bundle withdraws all its members."""
    now = now or datetime.now(UTC)
    members = (
        await repository.children(session, application.id) if application.kind == "bundle" else []
    )
    if not may_withdraw(application):
        raise TransitionNotAllowed("申请已有处理结果或已结束，不能撤回")
    for member in members:
        if member.status not in DECIDED and member.status not in FINAL:
            await move(
                session,
                member,
                to="withdrawn",
                actor_kind="applicant",
                actor=actor,
                at=now,
                note=reason,
            )
    await move(
        session,
        application,
        to="withdrawn",
        actor_kind="applicant",
        actor=actor,
        at=now,
        note=reason,
    )
    for withdrawn in [application, *members]:
        if withdrawn.status == "withdrawn":
            await outbox.publish(
                session,
                ApplicationWithdrawn(
                    application_id=withdrawn.id, at=now.isoformat(), reason=reason
                ),
            )
    return application


async def awaits_certificate(session: AsyncSession, application: Application) -> bool:
    """Whether the application's item promises an e-certificate that has not been issued
    yet. Completing it now would tell the citizen "办结" with an empty wallet."""
    if application.item_version_id is None or application.certificate_kept:
        return False
    item = await catalog_copies.version_content(session, application.item_version_id)
    return item is not None and item.content.get("result_kind") == "certificate"


async def complete_if_ready(
    session: AsyncSession, *, application: Application, now: datetime, on_time: bool | None = None
) -> None:
    """Complete a decided application unless what it promises is still due: required 容缺
    materials outstanding, or (approved) the certificate it earned, which completes it when
    sharing issues it. ``on_time``: as approval counted it, when it says."""
    if application.status in ("approved", "certificate_failed") and (
        await has_outstanding_materials(session, application)
        or await awaits_certificate(session, application)
    ):
        return
    await complete_application(session, application=application, now=now, on_time=on_time)


async def certificate_failed(
    session: AsyncSession, *, application: Application, type_name: str, reason: str, at: datetime
) -> None:
    """Sharing could not issue the certificate: the application stays with staff, visibly,
    instead of being completed with its result missing."""
    if application.status != "approved":
        return  # already completed by an earlier release, or ended: nothing to hold
    await move(
        session,
        application,
        to="certificate_failed",
        actor_kind="service",
        actor="sharing",
        at=at,
        note=f"电子证照「{type_name}」未能出具：{reason}",
    )


async def complete_application(
    session: AsyncSession, *, application: Application, now: datetime, on_time: bool | None = None
) -> None:
    # Held for its certificate after approval: the outcome is still the approval.
    outcome = "approved" if application.status == "certificate_failed" else application.status
    await move(session, application, to="completed", actor_kind="system", actor="intake", at=now)
    await outbox.publish(
        session,
        _completed_event(
            application_id=application.id,
            item_code=application.item_code,
            department=application.department,
            outcome=outcome,
            at=now,
            on_time=_on_time(application.due_date, now) if on_time is None else on_time,
        ),
    )
    if application.certificate_kept:
        early = await repository.take_early_certificate(session, application.id)
        application.certificate_kept = False
        if early is not None:
            # Delivered as it completes: the wallet already holds the certificate.
            await deliver_certificate(
                session, application=application, type_name=early.type_name, issued_at=now
            )


def _on_time(due_date: date | None, at: datetime) -> bool | None:
    return None if due_date is None else china_date(at) <= due_date


def _completed_event(
    *,
    application_id: str,
    item_code: str,
    department: str,
    outcome: str,
    at: datetime,
    on_time: bool | None,
) -> ApplicationCompleted:
    return ApplicationCompleted(
        application_id=application_id,
        item_code=item_code,
        department=department,
        outcome=outcome,
        completed_at=at.isoformat(),
        on_time=on_time,
    )


# --- the 秒批 path: decision and certificate, each one statement ------------------------------

_TAKES_NOTHING_ELSE = (
    Application.tolerated_until.is_(None),
    Application.parent_id.is_(None),
    Application.certificate_kept.is_(False),
)
"""An application with nothing else to take into account: no 容缺 materials that may be
outstanding, no bundle to aggregate, no certificate that came first. Anything else (and any
state but the one expected) takes the general way, which reads the row and decides."""


async def decided_at_once(
    session: AsyncSession,
    *,
    application_id: str,
    to: Literal["approved", "denied"],
    by: str,
    at: datetime,
    note: str,
    awaits_certificate: bool,
    on_time: bool | None = None,
) -> bool:
    """The decision on an application accepted and waiting for nothing else — 秒批's — in one
    statement (decided; completed too unless it is an approval awaiting its certificate) and
    ``application.completed`` when it completes; False, with nothing written, when the
    application is not so: the caller takes the general way. ``on_time``: as approval counted
    it when it completed the case with the decision."""
    completes = to == "denied" or not awaits_certificate
    # The state machine, run on what the row must be for the statement to change it.
    expected = Application(id=application_id, status="accepted", status_reason="")
    timeline = [transition(expected, to=to, actor_kind="service", actor=by, at=at, note=note)]
    if completes:
        timeline.append(
            transition(expected, to="completed", actor_kind="system", actor="intake", at=at)
        )
    changes: dict[str, Any] = {"status": expected.status, "decided_at": at, "decided_by": by}
    if expected.status_reason:
        changes["status_reason"] = expected.status_reason  # a denial's reason
    if completes:
        changes["completed_at"] = at
    moved = await repository.move_where(
        session,
        application_id=application_id,
        conditions=(Application.status == "accepted", *_TAKES_NOTHING_ELSE),
        changes=changes,
        timeline=timeline,
    )
    if moved is None:
        return False
    if completes:
        await outbox.publish(
            session,
            _completed_event(
                application_id=application_id,
                item_code=moved.item_code,
                department=moved.department,
                outcome=to,
                at=at,
                on_time=_on_time(moved.due_date, at) if on_time is None else on_time,
            ),
        )
    return True


async def delivered_at_once(
    session: AsyncSession, *, application_id: str, type_name: str, issued_at: datetime
) -> bool:
    """The certificate an approved application waits for, with nothing else outstanding: in
    one statement completed and delivered (送达), and ``application.completed``; False, with
    nothing written, when the application is not so: the caller takes the general way."""
    expected = Application(id=application_id, status="approved", status_reason="")
    timeline = [
        transition(expected, to="completed", actor_kind="system", actor="intake", at=issued_at),
        transition(
            expected,
            to="delivered",
            actor_kind="service",
            actor="sharing",
            at=issued_at,
            note=_delivered_note(type_name),
        ),
    ]
    moved = await repository.move_where(
        session,
        application_id=application_id,
        conditions=(Application.status == "approved", *_TAKES_NOTHING_ELSE),
        changes={"status": expected.status, "completed_at": issued_at},
        timeline=timeline,
    )
    if moved is None:
        return False
    await outbox.publish(
        session,
        _completed_event(
            application_id=application_id,
            item_code=moved.item_code,
            department=moved.department,
            outcome="approved",
            at=issued_at,
            on_time=_on_time(moved.due_date, issued_at),
        ),
    )
    return True


def _delivered_note(type_name: str) -> str:
    return f"电子证照已发放至证照夹：{type_name}"


async def certificate_issued(
    session: AsyncSession, *, application: Application, type_name: str, issued_at: datetime
) -> None:
    """The e-certificate is in the citizen's wallet: an approved application waiting for it
    completes and is delivered (送达). One that is not ready yet — the certificate came before
    the decision reached intake, or 容缺 materials are still outstanding — keeps it until it
    is. (``completed`` ones were completed by an earlier release before their certificate.)"""
    if application.status == "completed":
        await deliver_certificate(
            session, application=application, type_name=type_name, issued_at=issued_at
        )
    elif application.status not in FINAL:
        await repository.keep_early_certificate(
            session, application_id=application.id, type_name=type_name, issued_at=issued_at
        )
        application.certificate_kept = True
        if application.status in ("approved", "certificate_failed"):
            await complete_if_ready(session, application=application, now=issued_at)


async def deliver_certificate(
    session: AsyncSession, *, application: Application, type_name: str, issued_at: datetime
) -> None:
    await move(
        session,
        application,
        to="delivered",
        actor_kind="service",
        actor="sharing",
        at=issued_at,
        note=_delivered_note(type_name),
    )


async def has_outstanding_materials(session: AsyncSession, application: Application) -> bool:
    if application.tolerated_until is None:
        # Nothing was tolerated at acceptance (a required material missing otherwise is
        # refused at submission): nothing can be outstanding, and no row is read.
        return False
    return any(
        r.status in ("tolerated", "missing") and r.required
        for r in await repository.materials(session, application.id)
    )
