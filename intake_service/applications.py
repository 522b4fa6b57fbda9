"""Applications from draft to result: the rules of intake.

States (each change is a timeline entry with its actor)::

    draft ─> submitted ─> accepted ─> under_review ─> approved ─> completed ─> delivered
                 │             │             │  ▲        denied ─┘
                 └─ 不予受理    │             ▼  │
                               │   correction_requested ─> resubmitted
                               └─ 秒批: approved / denied directly
    withdrawn: by the applicant, any time before a decision
    terminated: 容缺 materials not supplied by their deadline

* An application is bound to the item version it was created for, forever.
* Submitting carries an ``Idempotency-Key``: the same key returns the same application; a unique
  index on (applicant, key) makes two concurrent submissions with one key produce one. The key
  is stored with a fingerprint of the request it came with: the same key with a different
  request is refused (422 ``idempotency-key-reused``), never answered with the old application.
* Materials are met by data sharing or an e-certificate (the sharing service decides; the
  applicant is not asked), by a file from the applicant's library or a new upload, or by a
  signed commitment (告知承诺) where the item allows it. A material the item lists as 可容缺
  may be missing at acceptance; the deadline is counted in working days, the result is held
  until it is supplied, and an application still missing it after the deadline is terminated.
* A submission whose materials are all met without a file is accepted at once (the formal
  check is done); one with uploads or 容缺 waits for a clerk's acceptance.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

import jsonschema
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import repository
from intake_service.events import (
    FORM_CONTEXT,
    HOLDER_CONTEXT,
    SUBJECT_CONTEXT,
    ApplicationAccepted,
    ApplicationCompleted,
    ApplicationNotAccepted,
    ApplicationSubmitted,
    ApplicationSupplemented,
    ApplicationTerminated,
    ApplicationWithdrawn,
    MaterialOutcome,
    SupplementReminderDue,
    outbox,
)
from intake_service.models import Application, ApplicationMaterial, ItemVersionCopy, TimelineEntry
from wangban import identifiers, labels, personal_fields
from wangban.calendar import CHINA_TZ, WorkingDayCalendar, china_date
from wangban.crypto import BlindIndex, FieldCipher
from wangban.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from wangban.sharing_client import SharedResolution

# --- errors -------------------------------------------------------------------------------------


class ApplicationNotFound(NotFound):
    """Also what another person's application answers: its existence is not disclosed."""

    type_slug = "application-not-found"
    title = "找不到该申请"


class ItemVersionNotAvailable(NotFound):
    type_slug = "item-version-not-available"
    title = "该事项版本不存在或已停止受理"


class IdempotencyKeyReused(ValidationFailed):
    """The Idempotency-Key came with another request before (IETF Idempotency-Key draft: 422):
    answering the old application would silently drop what changed."""

    type_slug = "idempotency-key-reused"
    title = "Idempotency-Key 已用于另一份申请"


class InvalidForm(ValidationFailed):
    type_slug = "invalid-application-form"
    title = "申请表填写有误"


class MaterialsIncomplete(ValidationFailed):
    type_slug = "materials-incomplete"
    title = "申请材料不齐全"


class TransitionNotAllowed(Conflict):
    type_slug = "transition-not-allowed"
    title = "当前办理状态不允许此操作"


class AlreadySubmitted(Conflict):
    type_slug = "already-submitted"
    title = "该申请已提交，请勿重复提交"


class InvalidApplicant(ValidationFailed):
    type_slug = "invalid-applicant"
    title = "申请人证件号码有误"


class ScopeNotAllowed(Forbidden):
    type_slug = "outside-service-scope"
    title = "该事项不支持在本窗口办理"


class AlreadyGranted(Conflict):
    type_slug = "already-granted"
    title = "该事项已获准，不能重复申请"


class ApplicationOpen(Conflict):
    type_slug = "application-open"
    title = "该事项已有正在办理的申请"


STORED_FORM_CONTEXT = "intake.application.form"
"""Encryption context (plus the field's path) of the personal fields of ``application.form``
at rest (:mod:`wangban.personal_fields`); migration ``intake_0004`` uses the same string."""

# --- states -------------------------------------------------------------------------------------

ActorKind = Literal["applicant", "staff", "system", "service"]

STATUS_NAMES: Mapping[str, str] = labels.STATUS_LABELS
"""The applicant's words for each state: the platform's one table (:mod:`wangban.labels`)."""

TRANSITIONS: Mapping[str, Mapping[str, frozenset[ActorKind]]] = {
    "draft": {
        "submitted": frozenset({"applicant", "staff"}),
        "withdrawn": frozenset({"applicant"}),
    },
    "submitted": {
        "accepted": frozenset({"staff", "system"}),
        "not_accepted": frozenset({"staff"}),
        "withdrawn": frozenset({"applicant"}),
    },
    "accepted": {
        "under_review": frozenset({"service"}),
        "not_accepted": frozenset({"service"}),
        "approved": frozenset({"service"}),
        "denied": frozenset({"service"}),
        "withdrawn": frozenset({"applicant"}),
        "terminated": frozenset({"system"}),
    },
    "under_review": {
        "correction_requested": frozenset({"service"}),
        "approved": frozenset({"service"}),
        "denied": frozenset({"service"}),
        "withdrawn": frozenset({"applicant"}),
        "terminated": frozenset({"system"}),
    },
    "correction_requested": {
        "resubmitted": frozenset({"applicant", "staff"}),
        "withdrawn": frozenset({"applicant"}),
        "terminated": frozenset({"system"}),
    },
    "resubmitted": {
        "under_review": frozenset({"service"}),
        "correction_requested": frozenset({"service"}),
        "approved": frozenset({"service"}),
        "denied": frozenset({"service"}),
        "withdrawn": frozenset({"applicant"}),
        "terminated": frozenset({"system"}),
    },
    "approved": {
        "completed": frozenset({"system"}),
        "certificate_failed": frozenset({"service"}),
        "terminated": frozenset({"system"}),
    },
    # Approved, but the certificate it earned could not be issued: staff see it and act; it
    # completes when the certificate is issued after all.
    "certificate_failed": {"completed": frozenset({"system"}), "terminated": frozenset({"system"})},
    "denied": {"completed": frozenset({"system"})},
    "completed": {"delivered": frozenset({"system", "service"})},
}
"""Who may move an application from one state to the next. Anything else is refused."""

DECIDED = frozenset({"approved", "certificate_failed", "denied", "completed", "delivered"})
FINAL = frozenset({"not_accepted", "withdrawn", "terminated", "delivered"})


def transition(
    application: Application,
    *,
    to: str,
    actor_kind: ActorKind,
    actor: str,
    at: datetime,
    note: str = "",
) -> TimelineEntry:
    """Move the application to ``to`` if its state machine allows ``actor_kind`` to; returns
    the timeline entry (the caller adds it to the session)."""
    current = application.status
    allowed = TRANSITIONS.get(current, {}).get(to)
    if allowed is None or actor_kind not in allowed:
        raise TransitionNotAllowed(
            f"申请当前为「{labels.status_label(current)}」，不能变更为「{labels.status_label(to)}」"
        )
    application.status = to
    if (
        to
        in (
            "not_accepted",
            "withdrawn",
            "terminated",
            "denied",
            "correction_requested",
            "certificate_failed",
        )
        and note
    ):
        application.status_reason = note
    if to == "submitted":
        application.submitted_at = at
    elif to == "accepted":
        application.accepted_at = at
    elif to in ("approved", "denied"):
        application.decided_at = at
    elif to == "completed":
        application.completed_at = at
    return TimelineEntry(
        application_id=application.id,
        at=at,
        from_status=current,
        to_status=to,
        actor_kind=actor_kind,
        actor=actor,
        note=note,
    )


async def move(
    session: AsyncSession,
    application: Application,
    *,
    to: str,
    actor_kind: ActorKind,
    actor: str,
    at: datetime,
    note: str = "",
) -> None:
    session.add(
        transition(application, to=to, actor_kind=actor_kind, actor=actor, at=at, note=note)
    )
    await session.flush()


# --- forms --------------------------------------------------------------------------------------


def form_errors(schema: Mapping[str, Any] | None, form: Mapping[str, Any]) -> list[FieldError]:
    """Every problem of ``form`` against the item's JSON Schema, each pointing at its field
    with a message a citizen understands."""
    if not schema:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(form), key=lambda e: list(e.absolute_path)):
        path = [str(p) for p in error.absolute_path]
        if error.validator == "required":
            missing = str(error.message).split("'")[1] if "'" in error.message else ""
            path = [*path, missing]
        pointer = "/form/" + "/".join(path) if path else "/form"
        errors.append(
            FieldError(pointer=pointer, detail=_message(schema, path, error), type=error.validator)
        )
    return errors


def _title(schema: Mapping[str, Any], path: Sequence[str]) -> str:
    node: Any = schema
    for part in path:
        if isinstance(node, Mapping) and "properties" in node and part in node["properties"]:
            node = node["properties"][part]
        elif isinstance(node, Mapping) and "items" in node:
            node = node["items"]
        else:
            break
    title = node.get("title") if isinstance(node, Mapping) else None
    return str(title or (path[-1] if path else "申请表"))


def _message(schema: Mapping[str, Any], path: Sequence[str], error: Any) -> str:
    title = _title(schema, path)
    kind = error.validator
    value = error.validator_value
    if kind == "required":
        return f"请填写「{title}」"
    if kind == "type":
        names = {
            "string": "文字",
            "integer": "整数",
            "number": "数字",
            "boolean": "是或否",
            "array": "列表",
            "object": "对象",
        }
        expected = value if isinstance(value, str) else (value[0] if value else "")
        return f"「{title}」应填写{names.get(expected, expected)}"
    if kind == "enum":
        return f"「{title}」请从以下选项中选择：{'、'.join(str(v) for v in value)}"
    if kind in ("minLength", "maxLength"):
        word = "至少" if kind == "minLength" else "最多"
        return f"「{title}」{word} {value} 个字"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = "不能小于" if "inimum" in kind else "不能大于"
        return f"「{title}」{word} {value}"
    if kind in ("pattern", "format"):
        return f"「{title}」格式不正确"
    if kind == "additionalProperties":
        return "申请表中有本事项不需要的内容"
    return f"「{title}」填写有误"


# --- creating and submitting --------------------------------------------------------------------


@dataclass(frozen=True)
class Applicant:
    """Who the application is for. ``subject`` is the opaque identity; the ID number and
    name are needed for data sharing and the certificate and are stored encrypted."""

    subject: str
    kind: Literal["person", "company"]
    id_number: str
    name: str

    def __repr__(self) -> str:
        return f"Applicant(subject={self.subject!r}, kind={self.kind!r})"


@dataclass(frozen=True)
class Channel:
    name: Literal["mini_program", "web", "kiosk", "window"]
    window: str | None = None
    region: str | None = None
    clerk: str | None = None
    agent: str | None = None


@dataclass(frozen=True)
class MaterialChoice:
    """What the applicant offers for material ``index``: an uploaded or library file, or a
    commitment (告知承诺)."""

    index: int
    file_id: str | None = None
    commitment: bool = False


@dataclass
class Keys:
    cipher: FieldCipher
    blind_index: BlindIndex


@dataclass
class Submission:
    application: Application
    created: bool
    missing: list[str] = field(default_factory=list)


def _check_version_open(item: ItemVersionCopy | None) -> ItemVersionCopy:
    if item is None or item.withdrawn_at is not None:
        raise ItemVersionNotAvailable()
    return item


def validated_applicant(applicant: Applicant) -> Applicant:
    """The applicant with a checked, normalised ID number or credit code."""
    try:
        number = (
            identifiers.validate_resident_id(applicant.id_number)
            if applicant.kind == "person"
            else identifiers.validate_uscc(applicant.id_number)
        )
    except identifiers.InvalidIdentifier as exc:
        raise InvalidApplicant(str(exc)) from exc
    return replace(applicant, id_number=number)


def new_application(
    *,
    item: ItemVersionCopy,
    applicant: Applicant,
    form: Mapping[str, Any],
    channel: Channel,
    keys: Keys,
    now: datetime,
    kind: str = "single",
    parent_id: str | None = None,
    idempotency_key: str | None = None,
    idempotency_fingerprint: str | None = None,
    form_schema: Mapping[str, Any] | None = None,
) -> Application:
    """A draft; ``form_schema`` is the schema of ``form`` when it is not the item's own (a
    bundle's combined form): its personal fields are stored encrypted."""
    applicant = validated_applicant(applicant)
    content = item.content
    if personal_fields.has_envelope(form):
        # The marker is how stored forms say "encrypted": a submitted one would be read back
        # as ciphertext that does not decrypt.
        raise InvalidForm(f"申请表不能包含保留字段 {personal_fields.MARKER}")
    return Application(
        id=str(uuid.uuid4()),
        kind=kind,
        parent_id=parent_id,
        item_version_id=item.version_id,
        bundle_version_id=None,
        item_code=item.implementing_code,
        item_name=item.name,
        department=item.department,
        region_code=item.region_code,
        applicant_subject=applicant.subject,
        applicant_kind=applicant.kind,
        applicant_ref=_applicant_ref(keys.blind_index, applicant),
        applicant_id_enc=keys.cipher.encrypt(applicant.id_number, context=HOLDER_CONTEXT),
        applicant_name_enc=keys.cipher.encrypt(applicant.name, context=HOLDER_CONTEXT),
        agent_subject=channel.agent,
        channel=channel.name,
        accepting_window=channel.window,
        accepting_region=channel.region,
        form=personal_fields.seal(
            form,
            form_schema if form_schema is not None else content.get("form_schema"),
            cipher=keys.cipher,
            context=STORED_FORM_CONTEXT,
        ),
        status="draft",
        status_reason="",
        idempotency_key=idempotency_key,
        idempotency_fingerprint=idempotency_fingerprint,
        committed_days=content.get("committed_days"),
        online_depth=content.get("online_depth"),
        visits=content.get("visits"),
        auto_approval=bool(content.get("auto_approval")),
        created_at=now,
    )


def clear_form(application: Application, cipher: FieldCipher) -> dict[str, Any]:
    """The form with its personal fields decrypted: for the applicant and the staff who may
    read the application, and for checking it against the schema; never stored so."""
    form = personal_fields.open_form(application.form, cipher=cipher, context=STORED_FORM_CONTEXT)
    return dict(form)


def _applicant_ref(blind_index: BlindIndex, applicant: Applicant) -> str:
    if applicant.kind == "person":
        return blind_index.resident_id(applicant.id_number)
    return blind_index.compute(applicant.id_number.upper(), purpose="uscc")


SCOPE_PREFIX: Mapping[str, int | None] = {
    "district": None,  # the item's own region (and the towns within it)
    "city": 4,  # 全城通办: any window of the same city
    "cross_city": 2,  # 跨城通办: any window of the same province
    "cross_province": 0,  # 跨省通办: any window
}


def check_window_scope(item: ItemVersionCopy, channel: Channel) -> None:
    """通办: a window may accept an item decided elsewhere only as far as the item's scope
    reaches; a district-only item only within its own region."""
    if channel.name != "window" or channel.region is None:
        return
    digits = SCOPE_PREFIX.get(item.scope)
    if digits is None:
        allowed = channel.region.startswith(item.region_code)
    else:
        allowed = channel.region[:digits] == item.region_code[:digits]
    if not allowed:
        raise ScopeNotAllowed(
            f"「{item.name}」不在本窗口（{channel.region}）的通办范围内，"
            f"请到 {item.region_code} 辖区的窗口办理"
        )


OPEN_STATES: Sequence[str] = (
    "submitted",
    "accepted",
    "under_review",
    "correction_requested",
    "resubmitted",
)
"""Submitted and not decided yet (a draft is not an application yet: it does not count)."""

_PERIOD_NAMES: Mapping[str, str] = {"year": "年", "month": "月"}


def grant_period_start(period: str, now: datetime) -> datetime:
    """The start of the current calendar ``period`` in China time."""
    local = now.astimezone(CHINA_TZ)
    start = local.replace(
        month=1 if period == "year" else local.month, day=1, hour=0, minute=0, second=0
    )
    return start.replace(microsecond=0)


async def check_grant_limit(
    session: AsyncSession, *, application: Application, item: ItemVersionCopy, now: datetime
) -> None:
    """A one-time benefit (``grant_limit`` of the item) is applied for while no other
    application of the same applicant for the item is open or granted (in the period). The
    advisory lock held to the end of the transaction makes two concurrent submissions meet."""
    limit = str(item.content.get("grant_limit") or "none")
    if limit == "none":
        return
    period = str(item.content.get("grant_period") or "year")
    await repository.lock_grant(
        session, applicant_ref=application.applicant_ref, item_code=application.item_code
    )
    found = await repository.open_or_granted(
        session,
        applicant_ref=application.applicant_ref,
        item_code=application.item_code,
        open_states=OPEN_STATES,
        granted_since=grant_period_start(period, now) if limit == "once_per_period" else None,
        exclude_id=application.id,
    )
    if not found:
        return
    existing = found[0]
    rule = (
        "每人限享受一次" if limit == "once" else f"每{_PERIOD_NAMES.get(period, period)}限享受一次"
    )
    state = labels.status_label(existing.status)
    extra = {
        "existing_application": {
            "id": existing.id,
            "status": existing.status,
            "status_name": state,
            "submitted_at": existing.submitted_at.isoformat() if existing.submitted_at else None,
            "decided_at": existing.decided_at.isoformat() if existing.decided_at else None,
        }
    }
    if existing.status in OPEN_STATES:
        submitted = china_date(existing.submitted_at or existing.created_at)
        raise ApplicationOpen(
            f"您已于 {submitted.isoformat()} 提交「{existing.item_name}」的申请"
            f"（申请编号 {existing.id}，当前状态：{state}），该事项{rule}。"
            "请等待办理结果，或撤回该申请后再申请。",
            extra=extra,
        )
    decided = china_date(existing.decided_at or existing.created_at)
    raise AlreadyGranted(
        f"您申请的「{existing.item_name}」已于 {decided.isoformat()} 获准"
        f"（申请编号 {existing.id}，当前状态：{state}），该事项{rule}，不能重复申请。",
        extra=extra,
    )


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


async def supplement(
    session: AsyncSession,
    *,
    application: Application,
    choices: Sequence[MaterialChoice],
    actor_kind: ActorKind,
    actor: str,
    now: datetime | None = None,
) -> Application:
    """补齐 (容缺 materials) or 补正 (after a correction request): attach files; after a
    correction request the application is resubmitted; when nothing tolerated is left and the
    decision was an approval held for it, the application completes."""
    now = now or datetime.now(UTC)
    rows = {r.index: r for r in await repository.materials(session, application.id)}
    owned = {
        f.id: f.material_name
        for f in await repository.library(session, owner_subject=application.applicant_subject)
    }
    names = []
    for choice in choices:
        row = rows.get(choice.index)
        if row is None:
            raise MaterialsIncomplete(f"没有第 {choice.index + 1} 项材料")
        if choice.file_id is None or choice.file_id not in owned:
            raise MaterialsIncomplete(f"材料「{row.name}」所选文件不存在")
        row.status = "uploaded" if owned[choice.file_id] == row.name else "reused"
        row.evidence_kind, row.evidence_id = "file", choice.file_id
        names.append(row.name)
    if not names:
        raise MaterialsIncomplete("请至少提交一项材料")
    # ``tolerated_until`` stays: that the application was accepted with missing materials is
    # history the statistics count (容缺受理), even after they arrived.
    complete = not any(r.status in ("tolerated", "missing") and r.required for r in rows.values())
    if application.status == "correction_requested":
        await move(
            session, application, to="resubmitted", actor_kind=actor_kind, actor=actor, at=now
        )
    elif application.status in FINAL or application.status in ("completed", "denied"):
        raise TransitionNotAllowed("申请已结束，无需再补充材料")
    await session.flush()
    await outbox.publish(
        session,
        ApplicationSupplemented(
            application_id=application.id, at=now.isoformat(), materials=names, complete=complete
        ),
    )
    if complete and application.status == "approved":
        await complete_if_ready(session, application=application, now=now)
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


async def terminate_overdue(
    session: AsyncSession, *, today: date, now: datetime | None = None
) -> list[str]:
    """End applications whose 容缺 materials were not supplied by their deadline."""
    now = now or datetime.now(UTC)
    ended = []
    for application in await repository.overdue_tolerated(session, today=today):
        if not await has_outstanding_materials(session, application):
            continue
        reason = f"容缺材料未在 {application.tolerated_until} 前补齐，办理终止"
        await move(
            session,
            application,
            to="terminated",
            actor_kind="system",
            actor="intake",
            at=now,
            note=reason,
        )
        await outbox.publish(
            session,
            ApplicationTerminated(application_id=application.id, at=now.isoformat(), reason=reason),
        )
        ended.append(application.id)
    return ended


IDEMPOTENCY_PURPOSE = "idempotency_request"
"""Blind-index purpose of request fingerprints: keyed, because a request carries personal data
(an unkeyed hash of a form would let anyone holding the table test guesses of it)."""


def request_fingerprint(request: Mapping[str, Any], *, target: str, keys: Keys) -> str:
    """The fingerprint stored with an Idempotency-Key: a keyed hash of the request as received
    (canonical JSON), not of the stored application, whose personal fields are encrypted with
    a fresh nonce and whose prefilled fields the government's values replaced. ``target`` names
    what is applied for by its code, and ``request`` leaves the version id out: the gateway
    resolves a code to the current version, so a retry after the catalogue published a new
    version of the item is still the same request."""
    content = {
        k: v for k, v in request.items() if k not in ("item_version_id", "bundle_version_id")
    }
    canonical = json.dumps(
        {"target": target, "request": content},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return keys.blind_index.compute(canonical, purpose=IDEMPOTENCY_PURPOSE)


def check_same_request(existing: Application, fingerprint: str | None) -> Application:
    """``existing`` when it was created by this request again; raises
    :class:`IdempotencyKeyReused` when its key came with another request. An application stored
    before fingerprints were kept (or without one) counts as the same request."""
    stored = existing.idempotency_fingerprint
    if stored is not None and fingerprint is not None and stored != fingerprint:
        raise IdempotencyKeyReused(
            "该 Idempotency-Key 已用于一份内容不同的申请，本次修改未被保存。"
            "如需提交修改后的申请，请使用新的 Idempotency-Key",
            extra={"application_id": existing.id},
        )
    return existing


async def recent_idempotent(
    session: AsyncSession, *, applicant_subject: str, key: str | None, fingerprint: str | None
) -> Application | None:
    """The application this key already made, if the request is the same again; raises
    :class:`IdempotencyKeyReused` if the key came with another request."""
    if key is None:
        return None
    existing = await repository.by_idempotency_key(
        session, applicant_subject=applicant_subject, key=key
    )
    return check_same_request(existing, fingerprint) if existing is not None else None


async def insert_once(session: AsyncSession, application: Application) -> tuple[Application, bool]:
    """Insert a new application under its idempotency key; if another request with the same
    key got there first (even concurrently: the unique index makes us wait for it), return
    that one instead, or raise :class:`IdempotencyKeyReused` if it came with another request."""
    try:
        async with session.begin_nested():
            session.add(application)
            await session.flush()
    except IntegrityError:
        existing = await repository.by_idempotency_key(
            session,
            applicant_subject=application.applicant_subject,
            key=application.idempotency_key or "",
        )
        if existing is None:
            raise
        return check_same_request(existing, application.idempotency_fingerprint), False
    return application, True


REMIND_WORKING_DAYS_BEFORE = 2
"""容缺 reminders go out this many working days before the deadline (and once only)."""


async def remind_due(
    session: AsyncSession,
    *,
    today: date,
    calendar: WorkingDayCalendar,
    now: datetime | None = None,
) -> list[str]:
    """Announce applications whose 容缺 deadline is near, once each (notify sends the reminder)."""
    now = now or datetime.now(UTC)
    horizon = calendar.add_working_days(today, REMIND_WORKING_DAYS_BEFORE)
    reminded = []
    for application in await repository.tolerated_due_by(session, day=horizon):
        outstanding = [
            r.name
            for r in await repository.materials(session, application.id)
            if r.status == "tolerated"
        ]
        if not outstanding or application.tolerated_until is None:
            continue
        application.reminded_at = now
        await outbox.publish(
            session,
            SupplementReminderDue(
                application_id=application.id,
                tolerated_until=application.tolerated_until.isoformat(),
                materials=outstanding,
            ),
        )
        reminded.append(application.id)
    await session.flush()
    return reminded
