"""Routes of the intake service: parse, authorise, call, return.

Who sees what: an applicant only their own applications and files (anything else answers 404,
as if it did not exist); a window clerk what was accepted at their window; a reviewer their
department's applications; an auditor everything, changing nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import (
    applications,
    bundles,
    catalog_copies,
    prefill,
    ratings,
    repository,
    statistics,
)
from intake_service.applications import (
    Applicant,
    ApplicationNotFound,
    Channel,
    Keys,
    MaterialChoice,
    SharedResolution,
)
from intake_service.models import Application, ItemVersionCopy, StoredFile
from intake_service.schemas import (
    ApplicationIn,
    ApplicationOut,
    ApplicationSummary,
    BundleStatusOut,
    FileOut,
    MaterialChoiceIn,
    MaterialOut,
    OptionalReasonIn,
    PrefillIn,
    PrefillOut,
    RatingIn,
    RatingOut,
    ReasonIn,
    RectificationOut,
    SubmitIn,
    SupplementIn,
    TextIn,
    TimelineOut,
    VerificationIn,
    WindowApplicationIn,
)
from wangban import labels
from wangban.auth import (
    AUDITOR,
    REVIEWER,
    WINDOW_CLERK,
    AssuranceLevel,
    CurrentIdentity,
    Identity,
    InsufficientAssurance,
    check_assurance,
    require_roles,
)
from wangban.calendar import WorkingDayCalendar, china_date
from wangban.catalog_client import CatalogClient, CatalogUnavailable
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import Database, UnitOfWork
from wangban.errors import BadRequest, Forbidden, ValidationFailed, problem_responses
from wangban.multipart import read_parts, size_text
from wangban.sharing_client import SharingClient, SharingUnavailable
from wangban.storage import ObjectStore, object_store_from_settings
from wangban.uploads import UploadRejected, check_upload

citizen = APIRouter(tags=["applications"])
staff = APIRouter(prefix="/staff", tags=["window and review"])

Clerk = Annotated[Identity, Depends(require_roles(WINDOW_CLERK))]
StaffMember = Annotated[Identity, Depends(require_roles(WINDOW_CLERK, REVIEWER, AUDITOR))]


class IdempotencyKeyMissing(BadRequest):
    type_slug = "idempotency-key-required"
    title = "提交申请需要 Idempotency-Key 请求头"


class ApplicantMismatch(Forbidden):
    type_slug = "applicant-mismatch"
    title = "只能以本人身份申请"


class FileRejected(ValidationFailed):
    type_slug = "file-rejected"
    title = "文件不符合要求"


class ApplicantNotVerified(ValidationFailed):
    """The name does not match the register for the ID number — or the register has no such
    number: one answer for both, so the check tells a clerk nothing about who exists."""

    type_slug = "applicant-not-verified"
    title = "申请人身份核验未通过"


class WindowIntakeIncomplete(ValidationFailed):
    """A window intake the form or materials do not complete. One answer whichever material or
    prefilled field was missing, so that trying ID numbers at a window cannot tell which
    department holds a record of whom (the 201/422-with-names oracle)."""

    type_slug = "window-intake-incomplete"
    title = "申请表或材料不完整，未能受理"


class FileNotFound(ApplicationNotFound):
    type_slug = "file-not-found"
    title = "找不到该文件"


# --- per-app objects ----------------------------------------------------------------------------


class Runtime:
    """What the routes share within one running app: keys, calendar, clients."""

    def __init__(self, request: Request) -> None:
        settings = request.app.state.settings
        self.settings = settings
        self.keys = Keys(FieldCipher.from_settings(settings), BlindIndex.from_settings(settings))
        self.calendar = WorkingDayCalendar.from_settings(settings)
        self.sharing = SharingClient(settings, caller="intake")
        self.catalog = CatalogClient(settings, caller="intake")
        self.store: ObjectStore = object_store_from_settings(settings)
        self.database: Database = request.app.state.database


async def _runtime(request: Request) -> Runtime:
    state = request.app.state
    if not hasattr(state, "intake_runtime"):
        state.intake_runtime = Runtime(request)
    runtime: Runtime = state.intake_runtime
    return runtime


async def close_runtime(app: FastAPI) -> None:
    runtime = getattr(app.state, "intake_runtime", None)
    if runtime is not None:
        await runtime.sharing.close()
        await runtime.catalog.aclose()
        await runtime.store.close()


Shared = Annotated[Runtime, Depends(_runtime)]


# --- access -------------------------------------------------------------------------------------


def _can_read(identity: Identity, application: Application) -> bool:
    if identity.kind in ("citizen", "company"):
        return application.applicant_subject == identity.subject or (
            application.agent_subject == identity.subject
        )
    if identity.kind != "staff":
        return False
    if identity.has_any_role(AUDITOR):
        return True
    if identity.has_any_role(REVIEWER) and identity.department == application.department:
        return True
    return identity.has_any_role(WINDOW_CLERK) and (
        application.accepting_window is not None
        and application.accepting_window == identity.department
    )


async def _readable(session: AsyncSession, identity: Identity, application_id: str) -> Application:
    try:
        uuid.UUID(application_id)
    except ValueError:
        raise ApplicationNotFound() from None
    application = await repository.application(session, application_id)
    if application is None or not _can_read(identity, application):
        raise ApplicationNotFound()
    return application


def _own(identity: Identity, application: Application) -> None:
    if application.applicant_subject != identity.subject:
        raise ApplicationNotFound()


def _can_accept(identity: Identity, application: Application) -> bool:
    """Who handles an application: the deciding department's reviewers, and the window that
    took it in. Online submissions are checked by the department (its reviewers)."""
    if identity.kind != "staff":
        return False
    if identity.has_any_role(REVIEWER) and identity.department == application.department:
        return True
    return identity.has_any_role(WINDOW_CLERK) and (
        application.accepting_window is not None
        and application.accepting_window == identity.department
    )


def _applicant(identity: Identity, body: ApplicationIn, keys: Keys) -> Applicant:
    """Citizens apply as themselves: the ID number they give must be the one the gateway
    verified (its blind index is in their token)."""
    applicant = applications.validated_applicant(
        Applicant(
            subject=identity.subject,
            kind=body.applicant.kind,
            id_number=body.applicant.id_number,
            name=body.applicant.name,
        )
    )
    if body.applicant.kind == "company" and identity.acting_for != applicant.id_number:
        # 法人: a person acting for a company the gateway has verified them to represent.
        raise ApplicantMismatch("只能以本人经认证代表的企业名义申请")
    if identity.kind == "company" and body.applicant.kind != "company":
        # A company identity carries no verified person (no person_ref check applies): it
        # applies as the company it acts for, never as some person.
        raise ApplicantMismatch("以企业身份登录时只能以该企业名义申请")
    if identity.kind == "citizen" and body.applicant.kind == "person":
        if identity.person_ref != keys.blind_index.resident_id(applicant.id_number):
            raise ApplicantMismatch()
    return applicant


def _choices(items: Sequence[MaterialChoiceIn]) -> list[MaterialChoice]:
    return [
        MaterialChoice(index=c.index, file_id=c.file_id, commitment=c.commitment) for c in items
    ]


async def _out(session: AsyncSession, application: Application, keys: Keys) -> ApplicationOut:
    """The application as its applicant and the staff allowed to read it see it: the form's
    personal fields, encrypted at rest, in clear."""
    timeline = await repository.timeline(session, application.id)
    rows = await repository.materials(session, application.id)
    members = (
        await repository.children(session, application.id) if application.kind == "bundle" else []
    )
    state = bundles.aggregate(members) if members else None
    return ApplicationOut(
        **_summary(application).model_dump(),
        parent_id=application.parent_id,
        item_version_id=application.item_version_id,
        bundle_version_id=application.bundle_version_id,
        region_code=application.region_code,
        accepting_window=application.accepting_window,
        accepting_region=application.accepting_region,
        accepted_by=application.accepted_by,
        agent=application.agent_subject,
        form=applications.clear_form(application, keys.cipher),
        form_sources=application.form_sources or {},
        timeline=[TimelineOut.model_validate(t) for t in timeline],
        materials=[MaterialOut.model_validate(m) for m in rows],
        bundle=(
            BundleStatusOut(
                total=state.total,
                done=state.done,
                summary=state.summary,
                needs_correction=state.needs_correction,
            )
            if state
            else None
        ),
        members=[_summary(m) for m in members],
    )


def _summary(application: Application) -> ApplicationSummary:
    return ApplicationSummary(
        id=application.id,
        kind=application.kind,
        item_code=application.item_code,
        item_name=application.item_name,
        department=application.department,
        status=application.status,
        status_name=labels.status_label(application.status),
        status_reason=application.status_reason,
        channel=application.channel,
        created_at=application.created_at,
        submitted_at=application.submitted_at,
        due_date=application.due_date,
        tolerated_until=application.tolerated_until,
    )


async def _resolve(
    runtime: Runtime,
    session: UnitOfWork,
    *,
    item_version_id: str,
    applicant: Applicant,
    application_id: str,
) -> list[SharedResolution]:
    item = await repository.item_version(session, item_version_id)
    if item is None or not applications.asks_sharing(item):
        return []  # nothing to resolve: no call, and no dependency on sharing being up
    return list(
        await runtime.sharing.resolve(
            item_version_id=item_version_id,
            applicant_kind=applicant.kind,
            applicant_id=applicant.id_number,
            application_id=application_id,
        )
    )


def _check_item_assurance(identity: Identity, item: ItemVersionCopy) -> None:
    """The item says how sure we must be of who is applying (登录 / 实名 / 实人)."""
    required = str(item.content.get("assurance") or "real_name").upper()
    check_assurance(identity, AssuranceLevel[required])


async def _prefilled(
    runtime: Runtime, *, item: ItemVersionCopy, applicant: Applicant
) -> dict[str, prefill.PrefilledValue]:
    return await prefill.prefill(
        schema=item.content.get("form_schema"),
        lookups=runtime.sharing,
        subject_kind=applicant.kind,
        subject_id=applicant.id_number,
        item_code=item.implementing_code,
        application_id=None,
    )


# --- applying -----------------------------------------------------------------------------------

APPLY_ERRORS = (
    SharingUnavailable,
    CatalogUnavailable,
    IdempotencyKeyMissing,
    applications.IdempotencyKeyReused,
    InsufficientAssurance,
    applications.InvalidApplicant,
    ApplicantMismatch,
    applications.ItemVersionNotAvailable,
    applications.InvalidForm,
    applications.MaterialsIncomplete,
    applications.ScopeNotAllowed,
    applications.ApplicationOpen,
    applications.AlreadyGranted,
)


async def _apply_bundle(
    *,
    body: ApplicationIn,
    session: AsyncSession,
    runtime: Runtime,
    applicant: Applicant,
    channel: Channel,
    key: str | None,
    fingerprint: str | None,
    identity: Identity | None,
    now: datetime,
    note: str = "",
) -> ApplicationOut:
    """一件事: the bundle's member applications, each resolved and submitted like one item."""
    assert body.bundle_version_id is not None
    bundle = await repository.bundle_version(session, body.bundle_version_id)
    if bundle is not None:
        for version_id in bundle.member_version_ids:
            member = await repository.item_version(session, version_id)
            if identity is not None and member is not None:
                _check_item_assurance(identity, member)

    async def resolve(item_version_id: str, application_id: str) -> list[SharedResolution]:
        return await _resolve(
            runtime,
            session,
            item_version_id=item_version_id,
            applicant=applicant,
            application_id=application_id,
        )

    parent = await bundles.submit_bundle(
        session,
        bundle_version_id=body.bundle_version_id,
        applicant=applicant,
        form=body.form,
        channel=channel,
        resolve=resolve,
        choices={v: _choices(c) for v, c in body.member_materials.items()},
        keys=runtime.keys,
        calendar=runtime.calendar,
        idempotency_key=key,
        idempotency_fingerprint=fingerprint,
        now=now,
    )
    if note:
        # How the applicant was identified at the window, on the parent's first entry.
        first = (await repository.timeline(session, parent.id))[0]
        if note not in first.note:
            first.note = f"{note}；{first.note}" if first.note else note
            await session.flush()
    return await _out(session, parent, runtime.keys)


async def _request_fingerprint(
    reads: AsyncSession, *, body: ApplicationIn, item: ItemVersionCopy | None, keys: Keys
) -> str:
    """The request as received (before prefill replaces fields and personal ones are sealed),
    naming the item or bundle by its code."""
    if body.bundle_version_id:
        bundle = await repository.bundle_version(reads, body.bundle_version_id)
        target = "bundle:" + (bundle.code if bundle is not None else body.bundle_version_id)
    else:
        target = "item:" + (
            item.implementing_code if item is not None else body.item_version_id or ""
        )
    return applications.request_fingerprint(body.model_dump(mode="json"), target=target, keys=keys)


async def _apply(
    *,
    body: ApplicationIn,
    session: AsyncSession,
    runtime: Runtime,
    applicant: Applicant,
    channel: Channel,
    key: str | None,
    actor_kind: applications.ActorKind,
    actor: str,
    response: Response,
    identity: Identity | None = None,
    note: str = "",
) -> ApplicationOut:
    if key is None and not body.draft:
        raise IdempotencyKeyMissing()
    # Everything read before calling sharing is read outside the write transaction, which
    # starts only once sharing has answered: a request waiting for another service must not
    # hold a pooled connection (idle in transaction) that the outbox relay, the consumers and
    # other requests need. So is the version applied for: where our copy lags the catalogue (a
    # version just published, intake just started), the catalog is asked rather than the
    # citizen told the item or bundle does not exist.
    item: ItemVersionCopy | None = None
    if body.bundle_version_id:
        # The bundle and its members: what the write transaction below reads.
        await catalog_copies.known_bundle(
            runtime.database, catalog=runtime.catalog, version_id=body.bundle_version_id
        )
    else:
        item = await catalog_copies.known_version(
            runtime.database, catalog=runtime.catalog, version_id=body.item_version_id or ""
        )
    async with runtime.database.read_sessionmaker() as reads:
        fingerprint = (
            await _request_fingerprint(reads, body=body, item=item, keys=runtime.keys)
            if key is not None
            else None
        )
        existing = await applications.recent_idempotent(
            reads, applicant_subject=applicant.subject, key=key, fingerprint=fingerprint
        )
    if existing is not None:
        response.status_code = 200  # the same request again: the same application
        return await _out(session, existing, runtime.keys)
    now = datetime.now(UTC)
    if body.bundle_version_id:
        return await _apply_bundle(
            body=body,
            session=session,
            runtime=runtime,
            applicant=applicant,
            channel=channel,
            key=key,
            fingerprint=fingerprint,
            identity=identity,
            now=now,
            note=note,
        )
    if item is None or item.withdrawn_at is not None:
        raise applications.ItemVersionNotAvailable()
    applications.check_window_scope(item, channel)
    if identity is not None:
        _check_item_assurance(identity, item)
    # Government values replace what the form carried for prefilled fields (read-only).
    form, sources = prefill.apply_to_form(
        body.form, await _prefilled(runtime, item=item, applicant=applicant)
    )
    application = applications.new_application(
        item=item,
        applicant=applicant,
        form=form,
        channel=channel,
        keys=runtime.keys,
        now=now,
        idempotency_key=key,
        idempotency_fingerprint=fingerprint,
    )
    application.form_sources = sources
    # Resolved under the application's id (the purpose of the lookups) before it is written. A
    # concurrent duplicate of this request (same key) is found by insert_once below; its lookups
    # stay in the audit log with an application that was never created, as they were made.
    shared_answers = (
        None
        if body.draft
        else await _resolve(
            runtime,
            session,
            item_version_id=item.version_id,
            applicant=applicant,
            application_id=application.id,
        )
    )
    application, created = await applications.insert_once(session, application)
    if not created:
        response.status_code = 200
        return await _out(session, application, runtime.keys)
    session.add(
        applications.TimelineEntry(
            application_id=application.id,
            at=now,
            from_status=None,
            to_status="draft",
            actor_kind=actor_kind,
            actor=actor,
            note=note,
        )
    )
    await session.flush()
    if shared_answers is not None:
        await applications.submit(
            session,
            application=application,
            shared=shared_answers,
            choices=_choices(body.materials),
            actor_kind=actor_kind,
            actor=actor,
            keys=runtime.keys,
            calendar=runtime.calendar,
            now=now,
        )
    return await _out(session, application, runtime.keys)


@citizen.post(
    "/applications",
    status_code=201,
    summary="Apply for an item or a bundle (一件事); Idempotency-Key required unless a draft",
    responses=problem_responses(*APPLY_ERRORS),
)
async def apply(
    body: ApplicationIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ApplicationOut:
    if identity.kind not in ("citizen", "company"):
        raise Forbidden("工作人员请通过窗口受理接口代为申请")
    return await _apply(
        body=body,
        session=session,
        runtime=runtime,
        applicant=_applicant(identity, body, runtime.keys),
        channel=Channel(name=body.channel),
        key=idempotency_key,
        actor_kind="applicant",
        actor=identity.subject,
        response=response,
        identity=identity,
    )


VERIFICATION_METHODS = {
    "register_name_match": "姓名与人口登记信息比对一致",
    "id_card_reader": "身份证读卡器读取",
    "face_check": "人脸比对核验",
}


async def _verify_at_window(
    runtime: Runtime,
    *,
    body: WindowApplicationIn,
    applicant: Applicant,
    clerk: Identity,
    channel: Channel,
) -> str:
    """Make sure the applicant is the person the ID number names before anything of theirs is
    looked up; the timeline note that records how, by whom (the entry's actor and time say
    who and when). Raises :class:`ApplicantNotVerified` when the register disagrees."""
    verification: VerificationIn = body.verification
    if body.item_version_id:
        item = await catalog_copies.known_version(
            runtime.database, catalog=runtime.catalog, version_id=body.item_version_id
        )
        if item is None or item.withdrawn_at is not None:
            raise applications.ItemVersionNotAvailable()
        # Out of the window's reach: refused before the register is asked about anyone.
        applications.check_window_scope(item, channel)
        item_code = item.implementing_code
    else:
        bundle = await catalog_copies.known_bundle(
            runtime.database, catalog=runtime.catalog, version_id=body.bundle_version_id or ""
        )
        if bundle is None:
            raise applications.ItemVersionNotAvailable()
        item_code = bundle.code
    if verification.method == "register_name_match":
        if applicant.kind != "person":
            raise applications.InvalidApplicant(
                "法人申请人不适用人口登记姓名比对，请核验经办人身份证后选择读卡器或人脸核验"
            )
        matches = await runtime.sharing.verify_identity(
            id_number=applicant.id_number,
            name=applicant.name,
            item_code=item_code,
            application_id=None,
            on_behalf_of=clerk,
        )
        if not matches:
            raise ApplicantNotVerified(
                "申请人姓名与身份证号码核验未通过，请核对证件；"
                "可使用身份证读卡器或人脸核验后重新受理"
            )
    how = VERIFICATION_METHODS[verification.method]
    reference = (verification.reference or "").strip()
    return f"身份核验：{how}" + (f"（流水号 {reference}）" if reference else "")


@staff.post(
    "/applications",
    status_code=201,
    summary="A window clerk files and accepts an application for an applicant (全城通办)",
    description="The applicant is verified first (``verification``): by the population "
    "register (name and ID number) or by the clerk's statement of the ID-card reading or face "
    "check done at the counter. Every lookup then names the clerk. A form or materials that "
    "do not complete the application answer one problem whichever record was missing.",
    responses=problem_responses(*APPLY_ERRORS, ApplicantNotVerified, WindowIntakeIncomplete),
)
async def apply_at_window(
    body: WindowApplicationIn,
    session: UnitOfWork,
    clerk: Clerk,
    runtime: Shared,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ApplicationOut:
    if not clerk.department or not clerk.region:
        raise Forbidden("窗口工作人员的身份中缺少窗口或所在区域")
    # At a window the applicant is identified by the clerk (ID card read at the counter); the
    # application belongs to them through the opaque subject derived from the ID number.
    checked = applications.validated_applicant(
        Applicant(
            subject="",
            kind=body.applicant.kind,
            id_number=body.applicant.id_number,
            name=body.applicant.name,
        )
    )
    applicant = Applicant(
        subject="p-" + runtime.keys.blind_index.resident_id(checked.id_number)[:32]
        if checked.kind == "person"
        else "c-" + checked.id_number,
        kind=checked.kind,
        id_number=checked.id_number,
        name=checked.name,
    )
    if idempotency_key is None and not body.draft:
        raise IdempotencyKeyMissing()
    channel = Channel(
        name="window",
        window=clerk.department,
        region=clerk.region,
        clerk=clerk.subject,
        agent=body.agent,
    )
    note = await _verify_at_window(
        runtime, body=body, applicant=applicant, clerk=clerk, channel=channel
    )
    try:
        return await _apply(
            body=body,
            session=session,
            runtime=runtime,
            applicant=applicant,
            channel=channel,
            key=idempotency_key,
            actor_kind="staff",
            actor=clerk.subject,
            response=response,
            note=note,
        )
    except (applications.InvalidForm, applications.MaterialsIncomplete):
        # Which field or material was missing would say which department has no record of
        # this person; the clerk sees the item's list and what the applicant brought.
        raise WindowIntakeIncomplete(
            "申请未受理：申请表或材料不完整。请核对申请表，"
            "未能通过数据共享获取的材料请收取申请人提供的文件后重新受理"
        ) from None


@citizen.post(
    "/prefill",
    summary="Form fields the government already knows, with their source (read-only)",
    description="POST, not GET: the body carries the applicant's ID number, which must "
    "never appear in a URL (URLs end up in access logs).",
    responses=problem_responses(
        applications.ItemVersionNotAvailable, ApplicantMismatch, CatalogUnavailable
    ),
)
async def get_prefill(
    body: PrefillIn,
    identity: CurrentIdentity,
    runtime: Shared,
) -> dict[str, PrefillOut]:
    # No session of the request: the catalog (a copy that lags) and sharing are asked, and
    # nothing is written.
    item = await catalog_copies.known_version(
        runtime.database, catalog=runtime.catalog, version_id=body.item_version_id
    )
    if item is None or item.withdrawn_at is not None:
        raise applications.ItemVersionNotAvailable()
    applicant = applications.validated_applicant(
        Applicant(subject=identity.subject, kind="person", id_number=body.id_number, name="")
    )
    if identity.kind != "citizen" or identity.person_ref != runtime.keys.blind_index.resident_id(
        applicant.id_number
    ):
        raise ApplicantMismatch()
    values = await _prefilled(runtime, item=item, applicant=applicant)
    return {
        name: PrefillOut(
            value=v.value, provider=v.provider, updated_at=v.updated_at, dataset=v.dataset
        )
        for name, v in values.items()
    }


@citizen.post(
    "/applications/{application_id}/submit",
    summary="Submit a draft",
    responses=problem_responses(ApplicationNotFound, applications.AlreadySubmitted, *APPLY_ERRORS),
)
async def submit_draft(
    application_id: str,
    body: SubmitIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
) -> ApplicationOut:
    # Read (in autocommit: the session's transaction begins at its first write) → ask sharing
    # → write: no transaction or pooled connection waits for sharing (wangban.db).
    application = await _readable(session, identity, application_id)
    _own(identity, application)
    id_number = runtime.keys.cipher.decrypt(
        application.applicant_id_enc, context=applications.HOLDER_CONTEXT
    )
    item = await repository.item_version(session, application.item_version_id or "")
    shared_answers = (
        await runtime.sharing.resolve(
            item_version_id=application.item_version_id or "",
            applicant_kind=application.applicant_kind,
            applicant_id=id_number,
            application_id=application.id,
        )
        if item is not None and applications.asks_sharing(item)
        else []
    )
    await applications.submit(
        session,
        application=application,
        shared=shared_answers,
        choices=_choices(body.materials),
        actor_kind="applicant",
        actor=identity.subject,
        keys=runtime.keys,
        calendar=runtime.calendar,
    )
    return await _out(session, application, runtime.keys)


@citizen.get("/applications", summary="My applications, newest first")
async def my_applications(
    session: UnitOfWork, identity: CurrentIdentity
) -> list[ApplicationSummary]:
    rows = await repository.applications_of(session, applicant_subject=identity.subject, limit=100)
    return [_summary(r) for r in rows]


@citizen.get(
    "/applications/{application_id}",
    summary="One application with its timeline and materials",
    responses=problem_responses(ApplicationNotFound),
)
async def get_application(
    application_id: str, session: UnitOfWork, identity: CurrentIdentity, runtime: Shared
) -> ApplicationOut:
    return await _out(session, await _readable(session, identity, application_id), runtime.keys)


@citizen.post(
    "/applications/{application_id}/withdraw",
    summary="Withdraw before a decision",
    responses=problem_responses(ApplicationNotFound, applications.TransitionNotAllowed),
)
async def withdraw(
    application_id: str,
    body: OptionalReasonIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
) -> ApplicationOut:
    application = await _readable(session, identity, application_id)
    _own(identity, application)
    await applications.withdraw(
        session, application=application, actor=identity.subject, reason=body.reason
    )
    return await _out(session, application, runtime.keys)


@citizen.post(
    "/applications/{application_id}/supplement",
    summary="Supply missing (容缺) or requested (补正) materials",
    responses=problem_responses(
        ApplicationNotFound, applications.TransitionNotAllowed, applications.MaterialsIncomplete
    ),
)
async def supplement(
    application_id: str,
    body: SupplementIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
) -> ApplicationOut:
    application = await _readable(session, identity, application_id)
    _own(identity, application)
    await applications.supplement(
        session,
        application=application,
        choices=_choices(body.materials),
        actor_kind="applicant",
        actor=identity.subject,
    )
    return await _out(session, application, runtime.keys)


# --- files --------------------------------------------------------------------------------------


@citizen.post(
    "/files",
    status_code=201,
    summary="Upload a material (multipart: part `file`, field `material_name`)",
    responses=problem_responses(FileRejected, BadRequest),
)
async def upload_file(
    request: Request, session: UnitOfWork, identity: CurrentIdentity, runtime: Shared
) -> FileOut:
    limit = runtime.settings.upload_max_bytes
    parts = await read_parts(
        request,
        limit=limit + 64 * 1024,  # room for the multipart envelope; the file is checked below
        too_large=FileRejected(f"文件超过 {size_text(limit)}"),
        plain_part="file",
    )
    file = parts.get("file")
    name_part = parts.get("material_name")
    if file is None or name_part is None:
        raise BadRequest("请在 multipart 请求中提供 file 和 material_name 两部分")
    material_name = name_part.data.decode("utf-8", errors="replace").strip()[:200]
    try:
        checked = check_upload(
            data=file.data,
            declared_type=file.media_type,
            filename=file.filename,
            max_bytes=limit,
            allowed_types=runtime.settings.upload_allowed_types,
        )
    except UploadRejected as exc:
        raise FileRejected(str(exc), extra={"reason": exc.reason}) from exc
    file_id = str(uuid.uuid4())
    key = f"materials/{file_id}"
    await runtime.store.put(key, file.data, content_type=checked.media_type)
    row = StoredFile(
        id=file_id,
        owner_subject=identity.subject,
        material_name=material_name,
        filename=checked.filename,
        media_type=checked.media_type,
        size=checked.size,
        sha256=checked.sha256,
        storage_key=key,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return FileOut.model_validate(row)


@citizen.get("/files", summary="My material library (一次提交、重复使用)")
async def my_files(
    session: UnitOfWork, identity: CurrentIdentity, material_name: str | None = None
) -> list[FileOut]:
    rows = await repository.library(
        session, owner_subject=identity.subject, material_name=material_name
    )
    return [FileOut.model_validate(r) for r in rows]


@citizen.get(
    "/files/{file_id}",
    summary="Download a file: its owner, or staff handling an application that uses it",
    response_class=Response,
    responses=problem_responses(FileNotFound),
)
async def download_file(
    file_id: str, session: UnitOfWork, identity: CurrentIdentity, runtime: Shared
) -> Response:
    try:
        uuid.UUID(file_id)
    except ValueError:
        raise FileNotFound() from None
    row = await repository.stored_file(session, file_id)
    if row is None:
        raise FileNotFound()
    allowed = row.owner_subject == identity.subject
    if not allowed and identity.kind == "staff":
        # Staff handling an application that uses the file: its reviewers and the window that
        # accepted it. Reading everything (auditors) does not extend to applicants' files.
        users = await repository.applications_using_file(session, file_id)
        allowed = any(_can_accept(identity, a) for a in users)
    if not allowed:
        raise FileNotFound()
    data = await runtime.store.get(row.storage_key)
    return Response(
        data,
        media_type=row.media_type,
        headers={
            "Content-Disposition": "attachment",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


# --- staff --------------------------------------------------------------------------------------


@staff.get("/applications", summary="Applications this staff member may see")
async def staff_applications(
    session: UnitOfWork, member: StaffMember, status: str | None = None
) -> list[ApplicationSummary]:
    if member.has_any_role(AUDITOR):
        rows = await repository.applications_for_staff(
            session, department=None, window=None, status=status, limit=200
        )
    elif member.has_any_role(REVIEWER):
        rows = await repository.applications_for_staff(
            session, department=member.department or "-", window=None, status=status, limit=200
        )
    else:
        rows = await repository.applications_for_staff(
            session, department=None, window=member.department or "-", status=status, limit=200
        )
    return [_summary(r) for r in rows]


@staff.post(
    "/applications/{application_id}/accept",
    summary="受理",
    responses=problem_responses(ApplicationNotFound, applications.TransitionNotAllowed),
)
async def accept(
    application_id: str, session: UnitOfWork, member: StaffMember, runtime: Shared
) -> ApplicationOut:
    application = await _readable_for_acceptance(session, member, application_id)
    await applications.accept(
        session,
        application=application,
        actor_kind="staff",
        actor=member.subject,
        calendar=runtime.calendar,
    )
    return await _out(session, application, runtime.keys)


@staff.post(
    "/applications/{application_id}/not-accept",
    summary="不予受理, with the reason",
    responses=problem_responses(ApplicationNotFound, applications.TransitionNotAllowed),
)
async def not_accept(
    application_id: str,
    body: ReasonIn,
    session: UnitOfWork,
    member: StaffMember,
    runtime: Shared,
) -> ApplicationOut:
    application = await _readable_for_acceptance(session, member, application_id)
    await applications.not_accept(
        session, application=application, actor=member.subject, reason=body.reason
    )
    return await _out(session, application, runtime.keys)


async def _readable_for_acceptance(
    session: AsyncSession, member: Identity, application_id: str
) -> Application:
    try:
        uuid.UUID(application_id)
    except ValueError:
        raise ApplicationNotFound() from None
    application = await repository.application(session, application_id, lock=True)
    if application is None or not _can_accept(member, application):
        raise ApplicationNotFound()
    return application


# --- 好差评, rectification, statistics ---------------------------------------------------------


@citizen.post(
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
    application = await _readable(session, identity, application_id)
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


Reviewer = Annotated[Identity, Depends(require_roles(REVIEWER))]
Manager = Annotated[Identity, Depends(require_roles(REVIEWER, AUDITOR))]


@staff.get("/rectifications/overdue", summary="Overdue rectifications (for managers)")
async def overdue_rectifications(session: UnitOfWork, member: Manager) -> list[RectificationOut]:
    department = None if member.has_any_role(AUDITOR) else (member.department or "-")
    rows = await ratings.overdue_rectifications(
        session, today=china_date(datetime.now(UTC)), department=department
    )
    return [RectificationOut.model_validate(r) for r in rows]


RECTIFICATION_ERRORS = (
    ratings.RectificationNotFound,
    ratings.NotYourRectification,
    ratings.RectificationStateConflict,
    ratings.InvalidRectificationInput,
)


@staff.post(
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


@staff.post(
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


@staff.post(
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


@staff.get(
    "/statistics",
    summary="三率一数 and the other figures, per department, item and period",
    responses=problem_responses(statistics.InvalidPeriod),
)
async def get_statistics(
    session: UnitOfWork,
    member: Manager,
    runtime: Shared,
    start: date,
    end: date,
    department: str | None = None,
    item_code: str | None = None,
) -> statistics.Statistics:
    if not member.has_any_role(AUDITOR):
        department = member.department or "-"  # a department sees its own figures
    figures = await statistics.statistics(
        session,
        department=department,
        item_code=item_code,
        start=start,
        end=end,
        calendar=runtime.calendar,
    )
    return figures
