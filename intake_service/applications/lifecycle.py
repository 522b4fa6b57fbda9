"""From draft to result: the material plan, submission, acceptance (受理) or not, withdrawal,
completion and the e-certificate's delivery (送达)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.sharing.api_v1 import SharedResolution
from intake_service import repository
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
from intake_service.applications.states import DECIDED, FINAL, ActorKind, move
from intake_service.events import (
    FORM_CONTEXT,
    SUBJECT_CONTEXT,
    ApplicationAccepted,
    ApplicationCompleted,
    ApplicationNotAccepted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    MaterialOutcome,
    outbox,
)
from intake_service.models import Application, ApplicationMaterial, ItemVersionCopy
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
    """Check the form and the materials, then submit; accept at once when nothing needs a
    person's check (no uploads, nothing tolerated) or when a window clerk files it."""
    now = now or datetime.now(UTC)
    if application.status != "draft":
        raise AlreadySubmitted()
    item = _check_version_open(
        await repository.item_version(session, application.item_version_id or "")
    )
    await check_grant_limit(session, application=application, item=item, now=now)
    errors = form_errors(item.content.get("form_schema"), clear_form(application, keys.cipher))
    if errors:
        raise InvalidForm(
            f"申请表有 {len(errors)} 处需要修改",
            extra={"errors": [e.model_dump() for e in errors]},
        )
    owned = {
        f.id: f.material_name
        for f in await repository.library(session, owner_subject=application.applicant_subject)
    }
    rows, missing = plan_materials(item=item, shared=shared, choices=choices, owned_files=owned)
    if missing:
        raise MaterialsIncomplete(f"还需提交：{'、'.join(missing)}", extra={"missing": missing})
    for row in rows:
        row.application_id = application.id
        session.add(row)
    await move(session, application, to="submitted", actor_kind=actor_kind, actor=actor, at=now)
    await outbox.publish(session, _submitted_event(application, rows, keys=keys))
    at_window = application.channel == "window"
    needs_check = any(r.status in ("uploaded", "reused", "tolerated") for r in rows)
    if at_window or not needs_check:
        # A window clerk checks the materials at the counter; online, nothing to check by hand.
        await accept(
            session,
            application=application,
            actor_kind="staff" if at_window else "system",
            actor=actor if at_window else "intake",
            calendar=calendar,
            now=now,
        )
    return application


def _submitted_event(
    application: Application, rows: Sequence[ApplicationMaterial], *, keys: Keys
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
        form_enc=keys.cipher.encrypt(
            json.dumps(clear_form(application, keys.cipher), ensure_ascii=False),
            context=FORM_CONTEXT,
        ),
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
    """受理. With materials tolerated as missing (容缺), the deadline for them is the longest
    of their 容缺时限, counted in working days from today."""
    now = now or datetime.now(UTC)
    rows = await repository.materials(session, application.id)
    item = await repository.item_version(session, application.item_version_id or "")
    tolerated = [r for r in rows if r.status == "tolerated"]
    await move(session, application, to="accepted", actor_kind=actor_kind, actor=actor, at=now)
    application.accepted_by = actor
    today = china_date(now)
    if tolerated and item is not None:
        limits = {
            str(m.get("name")): int(m.get("supplement_days") or 5)
            for m in item.content.get("materials", [])
        }
        days = max(limits.get(r.name, 5) for r in tolerated)
        application.tolerated_until = calendar.add_working_days(today, days)
    if application.committed_days is not None:
        application.due_date = calendar.add_working_days(today, application.committed_days)
    await session.flush()
    await outbox.publish(
        session,
        ApplicationAccepted(
            application_id=application.id,
            item_version_id=application.item_version_id or "",
            item_code=application.item_code,
            accepted_at=now.isoformat(),
            accepted_by=actor,
            accepting_window=application.accepting_window,
            accepting_region=application.accepting_region,
            due_date=application.due_date.isoformat() if application.due_date else None,
            tolerated_until=(
                application.tolerated_until.isoformat() if application.tolerated_until else None
            ),
            tolerated_materials=[r.name for r in tolerated],
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
    if application.status in DECIDED or application.status in FINAL:
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
    if application.item_version_id is None:
        return False
    item = await repository.item_version(session, application.item_version_id)
    if item is None or item.content.get("result_kind") != "certificate":
        return False
    return not await repository.has_early_certificate(session, application.id)


async def complete_if_ready(
    session: AsyncSession, *, application: Application, now: datetime
) -> None:
    """Complete a decided application unless what it promises is still due: required 容缺
    materials outstanding, or (approved) the certificate it earned, which completes it when
    sharing issues it."""
    if application.status in ("approved", "certificate_failed") and (
        await has_outstanding_materials(session, application)
        or await awaits_certificate(session, application)
    ):
        return
    await complete_application(session, application=application, now=now)


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
    session: AsyncSession, *, application: Application, now: datetime
) -> None:
    # Held for its certificate after approval: the outcome is still the approval.
    outcome = "approved" if application.status == "certificate_failed" else application.status
    await move(session, application, to="completed", actor_kind="system", actor="intake", at=now)
    on_time = None
    if application.due_date is not None:
        on_time = china_date(now) <= application.due_date
    await outbox.publish(
        session,
        ApplicationCompleted(
            application_id=application.id,
            item_code=application.item_code,
            department=application.department,
            outcome=outcome,
            completed_at=now.isoformat(),
            on_time=on_time,
        ),
    )
    early = await repository.take_early_certificate(session, application.id)
    if early is not None:
        # Delivered as it completes: the wallet already holds the certificate.
        await deliver_certificate(
            session, application=application, type_name=early.type_name, issued_at=now
        )


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
        note=f"电子证照已发放至证照夹：{type_name}",
    )


async def has_outstanding_materials(session: AsyncSession, application: Application) -> bool:
    return any(
        r.status in ("tolerated", "missing") and r.required
        for r in await repository.materials(session, application.id)
    )
