"""What the notify service does with other services' events: each one a citizen should hear
about becomes a notification (主动推送, 审批结果主动及时送达).

* ``application.submitted`` (intake): remember whom the application's later events concern,
  with the applicant's name masked (张*) — nothing else of them is kept;
* intake's ``application.accepted`` / ``not_accepted`` / ``completed`` / ``reminder_due`` (容缺
  materials due) and ``rectification.replied``; approval's ``case.correction_requested`` /
  ``approved`` / ``denied`` / ``not_accepted``; sharing's ``certificate.issued``: notify;
* ``application.completed`` also invites the citizen to rate the service (好差评).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from approval_service.events import (
    CaseApproved,
    CaseCorrectionRequested,
    CaseDenied,
    CaseNotAccepted,
)
from intake_service.events import (
    HOLDER_CONTEXT,
    ApplicationAccepted,
    ApplicationCompleted,
    ApplicationNotAccepted,
    ApplicationSubmitted,
    RectificationReplied,
    SupplementReminderDue,
)
from notify_service import delivery
from notify_service.templates import NotificationKind
from sharing_service.events import CertificateIssued
from wangban.consumer import Consumer
from wangban.crypto import FieldCipher, mask_name
from wangban.events import Envelope
from wangban.settings import Settings

RATING_SUFFIX = "#rating"
"""The rating invitation is a second notification of ``application.completed``: its own key."""


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value[:10]) if value else None


def build_consumer(settings: Settings) -> Consumer:
    consumer = Consumer(name="notify")
    cipher = FieldCipher.from_settings(settings)

    async def tell(
        session: AsyncSession,
        envelope: Envelope,
        *,
        kind: NotificationKind,
        application_id: str,
        at: str,
        key_suffix: str = "",
        **facts: Any,
    ) -> None:
        await delivery.notify(
            session,
            event_id=envelope.id + key_suffix,
            kind=kind,
            application_id=application_id,
            at=datetime.fromisoformat(at),
            facts=facts,
            now=delivery.now_utc(),
        )

    @consumer.on(ApplicationSubmitted)
    async def submitted(
        session: AsyncSession, *, event: ApplicationSubmitted, envelope: Envelope
    ) -> None:
        if event.applicant_subject is None or event.parent_id is not None:
            # No account to tell (older events), or a bundle member: its parent speaks for it.
            return
        name = cipher.decrypt(event.applicant_name_enc, context=HOLDER_CONTEXT)
        await delivery.record_application(
            session,
            application_id=event.application_id,
            subject=event.applicant_subject,
            item_code=event.item_code,
            item_name=event.item_name,
            applicant_name_masked=mask_name(name) if event.applicant_kind == "person" else name,
        )

    @consumer.on(ApplicationAccepted)
    async def accepted(
        session: AsyncSession, *, event: ApplicationAccepted, envelope: Envelope
    ) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.APPLICATION_ACCEPTED,
            application_id=event.application_id,
            at=event.accepted_at,
            due_date=_day(event.due_date),
            tolerated_until=_day(event.tolerated_until),
            materials=list(event.tolerated_materials),
        )

    async def not_accepted(
        session: AsyncSession,
        *,
        event: ApplicationNotAccepted | CaseNotAccepted,
        envelope: Envelope,
    ) -> None:
        """不予受理, at the window (intake) or in review (approval): the same news."""
        await tell(
            session,
            envelope,
            kind=NotificationKind.APPLICATION_NOT_ACCEPTED,
            application_id=event.application_id,
            at=event.at,
            reason=event.reason,
        )

    consumer.on(ApplicationNotAccepted)(not_accepted)
    consumer.on(CaseNotAccepted)(not_accepted)

    @consumer.on(CaseCorrectionRequested)
    async def correction_requested(
        session: AsyncSession, *, event: CaseCorrectionRequested, envelope: Envelope
    ) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.APPLICATION_CORRECTION_REQUESTED,
            application_id=event.application_id,
            at=event.requested_at,
            reason=event.reason,
            materials=list(event.materials),
        )

    @consumer.on(CaseApproved)
    async def approved(session: AsyncSession, *, event: CaseApproved, envelope: Envelope) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.APPLICATION_APPROVED,
            application_id=event.application_id,
            at=event.decided_at,
            outcome="approved",
        )

    @consumer.on(CaseDenied)
    async def denied(session: AsyncSession, *, event: CaseDenied, envelope: Envelope) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.APPLICATION_DENIED,
            application_id=event.application_id,
            at=event.decided_at,
            reason=event.reason,
            outcome="denied",
        )

    @consumer.on(ApplicationCompleted)
    async def completed(
        session: AsyncSession, *, event: ApplicationCompleted, envelope: Envelope
    ) -> None:
        for kind, suffix in (
            (NotificationKind.APPLICATION_COMPLETED, ""),
            (NotificationKind.RATING_INVITATION, RATING_SUFFIX),
        ):
            await tell(
                session,
                envelope,
                kind=kind,
                application_id=event.application_id,
                at=event.completed_at,
                key_suffix=suffix,
                outcome=event.outcome,
            )

    @consumer.on(CertificateIssued)
    async def certificate_issued(
        session: AsyncSession, *, event: CertificateIssued, envelope: Envelope
    ) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.CERTIFICATE_ISSUED,
            application_id=event.application_id,
            at=event.issued_at,
            certificate={"type_name": event.type_name, "valid_until": _day(event.valid_until)},
        )

    @consumer.on(SupplementReminderDue)
    async def supplement_reminder(
        session: AsyncSession, *, event: SupplementReminderDue, envelope: Envelope
    ) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.SUPPLEMENT_REMINDER,
            application_id=event.application_id,
            at=envelope.time.isoformat(),
            tolerated_until=_day(event.tolerated_until),
            materials=list(event.materials),
        )

    @consumer.on(RectificationReplied)
    async def rectification_replied(
        session: AsyncSession, *, event: RectificationReplied, envelope: Envelope
    ) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.RECTIFICATION_REPLIED,
            application_id=event.application_id,
            at=event.replied_at,
        )

    return consumer
