"""What the notify service does with other services' events: each one a citizen should hear
about becomes a notification (主动推送, 审批结果主动及时送达).

* ``application.submitted`` (intake): remember whom the application's later events concern,
  with the applicant's name masked (张*) — nothing else of them is kept, and nothing is sent:
  an application accepted at submission (its ``acceptance``) was shown 已受理 on the screen
  it was submitted from;
* intake's ``application.accepted`` (受理 later, by a clerk) / ``not_accepted`` /
  ``reminder_due`` (容缺 materials due) and ``rectification.replied``; approval's
  ``case.correction_requested`` / ``approved`` / ``denied`` / ``not_accepted``; sharing's
  ``certificate.issued``: notify;
* the **final notice** of an application carries the invitation to rate the service (好差评,
  ``rating`` in the context: the templates link to the rating page): the certificate notice
  when the approval promises a certificate (``case.approved`` names its type), else the
  result itself. So a 秒批 application with a certificate makes two notifications (approved;
  certificate, rate us), and ``application.completed`` has no handler: nothing is written for it.

Openids are not an event: the gateway calls ``PUT /internal/recipients/{subject}/wechat`` after
each WeChat login (``api.bind_wechat``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.approval.v1 import (
    CaseApproved,
    CaseCorrectionRequested,
    CaseDenied,
    CaseNotAccepted,
)
from contracts.intake.v1 import (
    HOLDER_CONTEXT,
    SUBJECT_CONTEXT,
    ApplicationAccepted,
    ApplicationNotAccepted,
    ApplicationSubmitted,
    RectificationReplied,
    SupplementReminderDue,
)
from contracts.sharing.v1 import CertificateFailed, CertificateIssued
from notify_service import delivery
from notify_service.templates import NotificationKind
from wangban import labels
from wangban.consumer import Consumer
from wangban.crypto import FieldCipher, mask_name
from wangban.events import Envelope
from wangban.settings import Settings

OCCURRENCE_NAMESPACE = uuid.UUID("5b0e3c1e-6f57-4d55-9b7e-2f1c0a4f8e21")
"""Namespace of the notification keys derived from what happened (:func:`occurrence_key`)."""


def occurrence_key(event_type: str, *facts: str) -> str:
    """The notification's de-duplication key: what happened, not the envelope that said so.

    The inbox drops an envelope seen before, but an upstream that re-publishes the same fact
    under a new envelope id (a replayed outbox row, a buggy retry) must not tell the citizen
    twice: an application is decided, completed and given a certificate once, so the key is
    the event type and the facts that make the occurrence unique."""
    return str(uuid.uuid5(OCCURRENCE_NAMESPACE, "\x1f".join((event_type, *facts))))


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value[:10]) if value else None


def certificate_follows(event: CaseApproved) -> bool:
    """The approval earns a certificate (the same test as the certificate library's)."""
    return event.result_kind == "certificate" and bool(event.certificate_type)


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
        occurrence: tuple[str, ...] | None = None,
        occurrence_of: str | None = None,
        **facts: Any,
    ) -> None:
        # One notification per occurrence: keyed by the facts that identify it when the
        # event names them, else by the envelope (events that may recur with new content).
        # ``occurrence_of``: the event type the occurrence belongs to, when another event
        # tells it (the approval, told with its certificate).
        key = (
            envelope.id
            if occurrence is None
            else occurrence_key(occurrence_of or envelope.type, *occurrence)
        )
        await delivery.notify(
            session,
            event_id=key,
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
        if event.applicant_subject_enc is None or event.parent_id is not None:
            # No account to tell (older events), or a bundle member: its parent speaks for it.
            return
        name = cipher.decrypt(event.applicant_name_enc, context=HOLDER_CONTEXT)
        await delivery.record_application(
            session,
            application_id=event.application_id,
            # Encrypted in the event so partners reading the topic cannot link one person's
            # applications; notify needs the account itself to fill its inbox.
            subject=cipher.decrypt(event.applicant_subject_enc, context=SUBJECT_CONTEXT),
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
            occurrence=(event.application_id, event.accepted_at),
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
            occurrence=(event.application_id, event.at),
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
            occurrence=(event.application_id, event.requested_at),
            reason=event.reason,
            materials=list(event.materials),
        )

    async def tell_approved(
        session: AsyncSession, envelope: Envelope, *, application_id: str, at: str, rating: bool
    ) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.APPLICATION_APPROVED,
            application_id=application_id,
            at=at,
            occurrence=(application_id,),  # a case is decided once
            occurrence_of=CaseApproved.event_type,
            outcome=labels.outcome_label("approved"),
            rating=rating,
        )

    # An approval whose certificate follows is told with the certificate (issued or failed,
    # within a second for 秒批): the citizen gets the result and the certificate notice (with
    # the rating link) together, and this consumer handles one event of the approval, not two.
    @consumer.on(CaseApproved, concerns=lambda event: not certificate_follows(event))
    async def approved(session: AsyncSession, *, event: CaseApproved, envelope: Envelope) -> None:
        await tell_approved(
            session,
            envelope,
            application_id=event.application_id,
            at=event.decided_at,
            rating=True,  # nothing follows: this is the final notice
        )

    @consumer.on(CaseDenied)
    async def denied(session: AsyncSession, *, event: CaseDenied, envelope: Envelope) -> None:
        await tell(
            session,
            envelope,
            kind=NotificationKind.APPLICATION_DENIED,
            application_id=event.application_id,
            at=event.decided_at,
            occurrence=(event.application_id,),
            reason=event.reason,
            outcome=labels.outcome_label("denied"),
            rating=True,
        )

    @consumer.on(CertificateIssued)
    async def certificate_issued(
        session: AsyncSession, *, event: CertificateIssued, envelope: Envelope
    ) -> None:
        await tell_approved(
            session,
            envelope,
            application_id=event.application_id,
            at=event.issued_at,
            rating=False,  # the certificate notice carries it
        )
        await tell(
            session,
            envelope,
            kind=NotificationKind.CERTIFICATE_ISSUED,
            application_id=event.application_id,
            at=event.issued_at,
            occurrence=(event.certificate_id,),
            certificate={"type_name": event.type_name, "valid_until": _day(event.valid_until)},
            rating=True,
        )

    @consumer.on(CertificateFailed)
    async def certificate_failed(
        session: AsyncSession, *, event: CertificateFailed, envelope: Envelope
    ) -> None:
        # Approved all the same: the citizen learns it now; the certificate (and its notice)
        # follows when staff have put right what stopped it.
        await tell_approved(
            session,
            envelope,
            application_id=event.application_id,
            at=event.failed_at,
            rating=False,
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
            occurrence=(event.application_id, event.replied_at),
        )

    return consumer
