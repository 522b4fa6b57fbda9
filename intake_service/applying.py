"""Applying: for an item or a bundle (一件事), online or at a window, as a draft or submitted,
and submitting a draft later. One function for each, and each is one sequence:

1. read, outside any transaction: the version applied for (asked of the catalog where our copy
   lags it: a version just published, intake just started), the fingerprint of the request and
   the application its ``Idempotency-Key`` already made;
2. ask sharing: the government's values for prefilled fields, the materials it supplies (under
   the new application's id, the purpose of the lookups), at a window the applicant's identity;
3. write, in the unit of work's transaction, which begins at its first write (``wangban.db``):
   the application, its timeline and the events in the outbox.

So a request waiting for another service holds no transaction and no pooled connection that
the outbox relay, the consumers and other requests need. Nothing here knows HTTP: the routes
parse, authorise, call and answer (:mod:`intake_service.api`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.sharing.api_v1 import SharedResolution
from intake_service import bundles, catalog_copies, prefill, repository
from intake_service.applications import grant_limits, idempotency, lifecycle
from intake_service.applications.creation import (
    Applicant,
    Channel,
    Keys,
    MaterialChoice,
    new_application,
    validated_applicant,
)
from intake_service.applications.errors import (
    ApplicantMismatch,
    ApplicantNotVerified,
    IdempotencyKeyMissing,
    InvalidApplicant,
    InvalidForm,
    ItemNotFound,
    ItemVersionNotAvailable,
    MaterialsIncomplete,
    WindowIntakeIncomplete,
)
from intake_service.applications.states import ActorKind
from intake_service.applications.window_scope import check_window_scope
from intake_service.catalog_copies import Sessions
from intake_service.events import HOLDER_CONTEXT, outbox
from intake_service.models import Application, ApplicationMaterial, ItemVersionCopy, TimelineEntry
from intake_service.schemas import ApplicationIn, MaterialChoiceIn, WindowApplicationIn
from intake_service.sharing import Sharing
from wangban.auth import AssuranceLevel, Identity, check_assurance
from wangban.calendar import WorkingDayCalendar
from wangban.errors import Problem
from wangban.http import ServiceCalls


@dataclass(frozen=True)
class Services:
    """What applying uses besides the request's unit of work."""

    database: Sessions
    """Reads before the write transaction, and the copies learnt from the catalog."""
    catalog: ServiceCalls
    sharing: Sharing
    keys: Keys
    calendar: WorkingDayCalendar


@dataclass(frozen=True)
class Applied:
    application: Application
    created: bool
    """False when the request came again and found the application it made (200, not 201)."""
    timeline: Sequence[TimelineEntry] | None = None
    materials: Sequence[ApplicationMaterial] | None = None
    """As written, when applying wrote them (the answer is built from them, not read back)."""


# --- who applies --------------------------------------------------------------------------------


def citizen_applicant(identity: Identity, body: ApplicationIn, keys: Keys) -> Applicant:
    """Citizens apply as themselves: the ID number they give must be the one the gateway
    verified (its blind index is in their token)."""
    applicant = validated_applicant(
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


def window_applicant(body: WindowApplicationIn, keys: Keys) -> Applicant:
    """At a window the applicant is identified by the clerk (ID card read at the counter); the
    application belongs to them through the opaque subject derived from the ID number."""
    return counter_applicant(
        kind=body.applicant.kind,
        id_number=body.applicant.id_number,
        name=body.applicant.name,
        keys=keys,
    )


def counter_applicant(
    *, kind: Literal["person", "company"], id_number: str, name: str, keys: Keys
) -> Applicant:
    """The applicant at the counter, owner of what is filed and scanned for them there: the
    same opaque subject for the same person (ID number, or a company's credit code)."""
    checked = validated_applicant(Applicant(subject="", kind=kind, id_number=id_number, name=name))
    return Applicant(
        subject="p-" + keys.blind_index.resident_id(checked.id_number)[:32]
        if checked.kind == "person"
        else "c-" + checked.id_number,
        kind=checked.kind,
        id_number=checked.id_number,
        name=checked.name,
    )


def material_choices(items: Sequence[MaterialChoiceIn]) -> list[MaterialChoice]:
    return [
        MaterialChoice(index=c.index, file_id=c.file_id, commitment=c.commitment) for c in items
    ]


def check_item_assurance(identity: Identity, item: ItemVersionCopy) -> None:
    """The item says how sure we must be of who is applying (登录 / 实名 / 实人)."""
    required = str(item.content.get("assurance") or "real_name").upper()
    check_assurance(identity, AssuranceLevel[required])


# --- what is applied for -----------------------------------------------------------------------


async def applied_item(services: Services, body: ApplicationIn) -> ItemVersionCopy | None:
    """The item version ``body`` applies for: by implementing code, the item's current version
    (the gateway passes the code on instead of asking the catalog for the version on every
    application); by id, that version. Learnt from the catalog where intake's copy lags it;
    ``None`` when there is none (the caller raises :func:`not_available`)."""
    if body.item_code is not None:
        return await catalog_copies.current_version(
            services.database, catalog=services.catalog, implementing_code=body.item_code
        )
    return await catalog_copies.known_version(
        services.database, catalog=services.catalog, version_id=body.item_version_id or ""
    )


def not_available(body: ApplicationIn) -> Problem:
    """What an item ``body`` names that cannot be applied for answers: an unknown or withdrawn
    code as the catalogue answers it (the citizen's doing), a version id as before."""
    return ItemNotFound() if body.item_code is not None else ItemVersionNotAvailable()


# --- asking sharing -----------------------------------------------------------------------------


async def _resolve(
    services: Services,
    *,
    item: ItemVersionCopy | None,
    applicant: Applicant,
    application_id: str,
) -> list[SharedResolution]:
    if item is None or not lifecycle.asks_sharing(item):
        return []  # nothing to resolve: no call, and no dependency on sharing being up
    return list(
        await services.sharing.resolve(
            item_version_id=item.version_id,
            applicant_kind=applicant.kind,
            applicant_id=applicant.id_number,
            application_id=application_id,
        )
    )


async def _prefilled(
    services: Services, *, item: ItemVersionCopy, applicant: Applicant
) -> dict[str, prefill.PrefilledValue]:
    return await prefill.prefill(
        schema=item.content.get("form_schema"),
        lookups=services.sharing,
        subject_kind=applicant.kind,
        subject_id=applicant.id_number,
        item_code=item.implementing_code,
        application_id=None,
    )


async def prefill_for(
    services: Services, *, identity: Identity, item_version_id: str, id_number: str
) -> dict[str, prefill.PrefilledValue]:
    """The form fields the government already knows of the citizen ``identity`` (whose ID
    number ``id_number`` must be): read-only values with their source. Nothing is written: the
    catalog (a copy that lags) and sharing are asked."""
    item = await catalog_copies.known_version(
        services.database, catalog=services.catalog, version_id=item_version_id
    )
    if item is None or item.withdrawn_at is not None:
        raise ItemVersionNotAvailable()
    applicant = validated_applicant(
        Applicant(subject=identity.subject, kind="person", id_number=id_number, name="")
    )
    if identity.kind != "citizen" or identity.person_ref != services.keys.blind_index.resident_id(
        applicant.id_number
    ):
        raise ApplicantMismatch()
    return await _prefilled(services, item=item, applicant=applicant)


# --- applying -----------------------------------------------------------------------------------


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
            item.implementing_code
            if item is not None
            else body.item_code or body.item_version_id or ""
        )
    return idempotency.request_fingerprint(body.model_dump(mode="json"), target=target, keys=keys)


async def apply(
    session: AsyncSession,
    *,
    services: Services,
    body: ApplicationIn,
    applicant: Applicant,
    channel: Channel,
    key: str | None,
    actor_kind: ActorKind,
    actor: str,
    identity: Identity | None = None,
    note: str = "",
    now: datetime | None = None,
) -> Applied:
    """Apply for the item or bundle ``body`` names, as a draft (``body.draft``) or submitted
    (with an ``Idempotency-Key``: the same request again answers the application it made).
    ``identity`` is the citizen applying online (the item's assurance level is checked), ``note``
    the first timeline entry's note (how a window identified the applicant)."""
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
            services.database, catalog=services.catalog, version_id=body.bundle_version_id
        )
    else:
        item = await applied_item(services, body)
    async with services.database.read_sessionmaker() as reads:
        fingerprint = (
            await _request_fingerprint(reads, body=body, item=item, keys=services.keys)
            if key is not None
            else None
        )
        existing = await idempotency.recent_idempotent(
            reads, applicant_subject=applicant.subject, key=key, fingerprint=fingerprint
        )
    if existing is not None:
        return Applied(existing, created=False)  # the same request again: the same application
    now = now or datetime.now(UTC)
    if body.bundle_version_id:
        parent = await _apply_bundle(
            session,
            services=services,
            body=body,
            applicant=applicant,
            channel=channel,
            key=key,
            fingerprint=fingerprint,
            identity=identity,
            now=now,
            note=note,
        )
        return Applied(parent, created=True)
    if item is None or item.withdrawn_at is not None:
        raise not_available(body)
    check_window_scope(item, channel)
    if identity is not None:
        check_item_assurance(identity, item)
    # Government values replace what the form carried for prefilled fields (read-only).
    form, sources = prefill.apply_to_form(
        body.form, await _prefilled(services, item=item, applicant=applicant)
    )
    application = new_application(
        item=item,
        applicant=applicant,
        form=form,
        channel=channel,
        keys=services.keys,
        now=now,
        idempotency_key=key,
        idempotency_fingerprint=fingerprint,
    )
    application.form_sources = sources
    # Resolved under the application's id (the purpose of the lookups) before it is written. A
    # concurrent duplicate of this request (same key) is found by the insert below; its lookups
    # stay in the audit log with an application that was never created, as they were made.
    submission = (
        None
        if body.draft
        else await lifecycle.prepare_submission(
            session,
            application=application,
            item=item,
            form=form,
            shared=await _resolve(
                services, item=item, applicant=applicant, application_id=application.id
            ),
            choices=material_choices(body.materials),
            actor_kind=actor_kind,
            actor=actor,
            keys=services.keys,
            calendar=services.calendar,
            now=now,
        )
    )
    # Written once, in its final state: the row, its materials and its timeline in one
    # statement (the draft's first entry and, submitted, the moves since), then the event.
    timeline = [
        TimelineEntry(
            application_id=application.id,
            at=now,
            from_status=None,
            to_status="draft",
            actor_kind=actor_kind,
            actor=actor,
            note=note,
        ),
        *(submission.timeline if submission is not None else ()),
    ]
    materials = submission.materials if submission is not None else []
    limited = submission is not None and grant_limits.is_limited(item)
    if not await repository.insert_application(
        session, application, materials=materials, timeline=timeline, lock_grant=limited
    ):
        first = await idempotency.made_first(
            session, applicant_subject=applicant.subject, key=key or "", fingerprint=fingerprint
        )
        return Applied(first, created=False)
    if submission is not None:
        # After the insert (which took the applicant's lock for the item), as a concurrent
        # duplicate (same key) must find the application rather than be refused as a second
        # one; a refusal rolls the insert back.
        await grant_limits.check_grant_limit(
            session, application=application, item=item, now=now, locked=limited
        )
        await outbox.publish(session, submission.event)
    return Applied(application, created=True, timeline=timeline, materials=materials)


async def _apply_bundle(
    session: AsyncSession,
    *,
    services: Services,
    body: ApplicationIn,
    applicant: Applicant,
    channel: Channel,
    key: str | None,
    fingerprint: str | None,
    identity: Identity | None,
    now: datetime,
    note: str = "",
) -> Application:
    """一件事: the bundle's member applications, each resolved and submitted like one item."""
    assert body.bundle_version_id is not None
    bundle = await repository.bundle_version(session, body.bundle_version_id)
    if bundle is not None:
        for version_id in bundle.member_version_ids:
            member = await catalog_copies.version_content(session, version_id)
            if identity is not None and member is not None:
                check_item_assurance(identity, member)

    async def resolve(item_version_id: str, application_id: str) -> list[SharedResolution]:
        return await _resolve(
            services,
            item=await catalog_copies.version_content(session, item_version_id),
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
        choices={v: material_choices(c) for v, c in body.member_materials.items()},
        keys=services.keys,
        calendar=services.calendar,
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
    return parent


# --- at a window --------------------------------------------------------------------------------

VERIFICATION_METHODS: Mapping[str, str] = {
    "register_name_match": "姓名与人口登记信息比对一致",
    "id_card_reader": "身份证读卡器读取",
    "face_check": "人脸比对核验",
}


async def verify_at_window(
    services: Services,
    *,
    body: WindowApplicationIn,
    applicant: Applicant,
    clerk: Identity,
    channel: Channel,
) -> str:
    """Make sure the applicant is the person the ID number names before anything of theirs is
    looked up; the timeline note that records how, by whom (the entry's actor and time say
    who and when). Raises :class:`ApplicantNotVerified` when the register disagrees."""
    verification = body.verification
    if not body.bundle_version_id:
        item = await applied_item(services, body)
        if item is None or item.withdrawn_at is not None:
            raise not_available(body)
        # Out of the window's reach: refused before the register is asked about anyone.
        check_window_scope(item, channel)
        item_code = item.implementing_code
    else:
        bundle = await catalog_copies.known_bundle(
            services.database, catalog=services.catalog, version_id=body.bundle_version_id or ""
        )
        if bundle is None:
            raise ItemVersionNotAvailable()
        item_code = bundle.code
    if verification.method == "register_name_match":
        if applicant.kind != "person":
            raise InvalidApplicant(
                "法人申请人不适用人口登记姓名比对，请核验经办人身份证后选择读卡器或人脸核验"
            )
        matches = await services.sharing.verify_identity(
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


async def apply_at_window(
    session: AsyncSession,
    *,
    services: Services,
    body: WindowApplicationIn,
    clerk: Identity,
    window: str,
    region: str,
    key: str | None,
) -> Applied:
    """A window clerk files and accepts an application for the applicant (全城通办): the
    applicant verified first, every lookup then naming the clerk."""
    applicant = window_applicant(body, services.keys)
    if key is None and not body.draft:
        raise IdempotencyKeyMissing()
    channel = Channel(
        name="window", window=window, region=region, clerk=clerk.subject, agent=body.agent
    )
    note = await verify_at_window(
        services, body=body, applicant=applicant, clerk=clerk, channel=channel
    )
    try:
        return await apply(
            session,
            services=services,
            body=body,
            applicant=applicant,
            channel=channel,
            key=key,
            actor_kind="staff",
            actor=clerk.subject,
            note=note,
        )
    except (InvalidForm, MaterialsIncomplete):
        # Which field or material was missing would say which department has no record of
        # this person; the clerk sees the item's list and what the applicant brought.
        raise WindowIntakeIncomplete(
            "申请未受理：申请表或材料不完整。请核对申请表，"
            "未能通过数据共享获取的材料请收取申请人提供的文件后重新受理"
        ) from None


# --- a draft, submitted -------------------------------------------------------------------------


async def submit_draft(
    session: AsyncSession,
    *,
    services: Services,
    application: Application,
    choices: Sequence[MaterialChoice],
    actor: str,
) -> Application:
    """The applicant submits their draft: read (in autocommit: the session's transaction begins
    at its first write) → ask sharing → write, so no transaction or pooled connection waits for
    sharing (``wangban.db``)."""
    id_number = services.keys.cipher.decrypt(application.applicant_id_enc, context=HOLDER_CONTEXT)
    item = await catalog_copies.version_content(session, application.item_version_id or "")
    shared_answers = (
        await services.sharing.resolve(
            item_version_id=application.item_version_id or "",
            applicant_kind=application.applicant_kind,
            applicant_id=id_number,
            application_id=application.id,
        )
        if item is not None and lifecycle.asks_sharing(item)
        else []
    )
    return await lifecycle.submit(
        session,
        application=application,
        shared=shared_answers,
        choices=choices,
        actor_kind="applicant",
        actor=actor,
        keys=services.keys,
        calendar=services.calendar,
    )
