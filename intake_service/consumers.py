"""What the intake service does with other services' events.

* catalog: keep copies of published item and bundle versions; mark withdrawn items;
* approval: review started, correction requested (补正), approved, denied — each moves the
  application; an approval whose 容缺 materials are still outstanding is held (approved, not
  completed) until they are supplied;
* sharing: the certificate was issued — the result is delivered.

Handlers are idempotent beyond the inbox: an event for a state the application has already
passed (a decision redelivered after completion) changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.approval.v1 import (
    CaseAccepted,
    CaseApproved,
    CaseCorrectionRequested,
    CaseDenied,
    CaseNotAccepted,
)
from contracts.catalog.v1 import BundlePublished, ItemPublished, ItemWithdrawn
from contracts.sharing.v1 import CertificateFailed, CertificateIssued
from intake_service import bundles, catalog_copies, repository
from intake_service.applications import lifecycle, states
from intake_service.models import Application
from wangban.consumer import Consumer
from wangban.events import Envelope

consumer = Consumer(name="intake")


@consumer.on(ItemPublished)
async def keep_item_version(
    session: AsyncSession, *, event: ItemPublished, envelope: Envelope
) -> None:
    content = event.content
    await repository.save_item_version(
        session,
        {
            "version_id": event.version_id,
            "item_id": event.item_id,
            "implementing_code": event.implementing_code,
            "name": str(content.get("name", "")),
            "department": str(content.get("department", "")),
            "region_code": str(content.get("region_code", "")),
            "scope": str(content.get("scope", "district")),
            "content": content,
            "published_at": datetime.fromisoformat(event.published_at),
            "withdrawn_at": None,
        },
    )


@consumer.on(ItemWithdrawn)
async def item_withdrawn(
    session: AsyncSession, *, event: ItemWithdrawn, envelope: Envelope
) -> None:
    await repository.mark_item_withdrawn(
        session, item_id=event.item_id, at=datetime.fromisoformat(event.withdrawn_at)
    )
    # Whether a version may be applied for is read from the row, never from the process's
    # copies; forgetting them keeps the copies' ``withdrawn_at`` from misleading a reader.
    catalog_copies.COPIES.forget_item(event.item_id)


@consumer.on(BundlePublished)
async def keep_bundle_version(
    session: AsyncSession, *, event: BundlePublished, envelope: Envelope
) -> None:
    await repository.save_bundle_version(
        session,
        {
            "version_id": event.version_id,
            "bundle_id": event.bundle_id,
            "code": event.code,
            "name": str(event.content.get("name", "")),
            "member_version_ids": event.member_version_ids,
            "content": event.content,
            "published_at": datetime.fromisoformat(event.published_at),
        },
    )


async def _application(session: AsyncSession, application_id: str) -> Application | None:
    return await repository.application(session, application_id, lock=True)


async def _decided(
    session: AsyncSession,
    application_id: str,
    *,
    to: Literal["approved", "denied"],
    by: str,
    at: datetime,
    note: str,
    awaits_certificate: bool,
    on_time: bool | None = None,
) -> None:
    # 秒批's way first: one statement when the application waits for nothing else.
    if await lifecycle.decided_at_once(
        session,
        application_id=application_id,
        to=to,
        by=by,
        at=at,
        note=note,
        awaits_certificate=awaits_certificate,
        on_time=on_time,
    ):
        return
    application = await _application(session, application_id)
    if application is None:
        return
    if application.status in states.DECIDED or application.status in states.FINAL:
        return  # already past this point: a redelivered or late decision changes nothing
    await states.move(session, application, to=to, actor_kind="service", actor=by, at=at, note=note)
    application.decided_by = by
    await lifecycle.complete_if_ready(session, application=application, now=at, on_time=on_time)
    await bundles.refresh_parent(session, child=application, now=at)


@consumer.on(CaseAccepted)
async def case_accepted(session: AsyncSession, *, event: CaseAccepted, envelope: Envelope) -> None:
    application = await _application(session, event.application_id)
    if application is None or application.status not in ("accepted", "resubmitted"):
        return
    at = datetime.fromisoformat(event.started_at)
    await states.move(
        session, application, to="under_review", actor_kind="service", actor=event.reviewer, at=at
    )
    await bundles.refresh_parent(session, child=application, now=at)


@consumer.on(CaseCorrectionRequested)
async def correction_requested(
    session: AsyncSession, *, event: CaseCorrectionRequested, envelope: Envelope
) -> None:
    application = await _application(session, event.application_id)
    if application is None or application.status not in ("under_review", "resubmitted"):
        return
    at = datetime.fromisoformat(event.requested_at)
    await states.move(
        session,
        application,
        to="correction_requested",
        actor_kind="service",
        actor=event.reviewer,
        at=at,
        note=event.reason,
    )
    await bundles.refresh_parent(session, child=application, now=at)


@consumer.on(CaseNotAccepted)
async def not_accepted(
    session: AsyncSession, *, event: CaseNotAccepted, envelope: Envelope
) -> None:
    application = await _application(session, event.application_id)
    if application is None or application.status != "accepted":
        return
    at = datetime.fromisoformat(event.at)
    await states.move(
        session,
        application,
        to="not_accepted",
        actor_kind="service",
        actor=event.by,
        at=at,
        note=event.reason,
    )
    await bundles.refresh_parent(session, child=application, now=at)


@consumer.on(CaseApproved)
async def approved(session: AsyncSession, *, event: CaseApproved, envelope: Envelope) -> None:
    await _decided(
        session,
        event.application_id,
        to="approved",
        by=event.decided_by,
        at=datetime.fromisoformat(event.decided_at),
        note="秒批通过" if event.decided_by == "auto" else "",
        # The item's result, as approval read it from the same version.
        awaits_certificate=event.result_kind == "certificate",
        # Completed with the decision (a machine's): on time as approval counted it, whose
        # clock knows the days it stopped (补正, 特别程序).
        on_time=event.completion.on_time if event.completion is not None else None,
    )


@consumer.on(CaseDenied)
async def denied(session: AsyncSession, *, event: CaseDenied, envelope: Envelope) -> None:
    await _decided(
        session,
        event.application_id,
        to="denied",
        by=event.decided_by,
        at=datetime.fromisoformat(event.decided_at),
        note=event.reason,
        awaits_certificate=False,
    )


@consumer.on(CertificateFailed)
async def certificate_failed(
    session: AsyncSession, *, event: CertificateFailed, envelope: Envelope
) -> None:
    application = await _application(session, event.application_id)
    if application is None:
        return
    at = datetime.fromisoformat(event.failed_at)
    await lifecycle.certificate_failed(
        session, application=application, type_name=event.type_name, reason=event.reason, at=at
    )
    await bundles.refresh_parent(session, child=application, now=at)


@consumer.on(CertificateIssued)
async def certificate_issued(
    session: AsyncSession, *, event: CertificateIssued, envelope: Envelope
) -> None:
    issued_at = datetime.fromisoformat(event.issued_at) if event.issued_at else datetime.now(UTC)
    # The approved application waiting for it, with nothing else outstanding: one statement.
    if await lifecycle.delivered_at_once(
        session, application_id=event.application_id, type_name=event.type_name, issued_at=issued_at
    ):
        return
    application = await _application(session, event.application_id)
    if application is None:
        return
    await lifecycle.certificate_issued(
        session, application=application, type_name=event.type_name, issued_at=issued_at
    )
    await bundles.refresh_parent(session, child=application, now=datetime.now(UTC))
