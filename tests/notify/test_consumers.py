"""The notify consumer's handlers on real PostgreSQL: which events tell the citizen what, with
the name masked and nothing personal kept, the rating invitation (好差评) with the final notice;
and the whole path over the real broker, where a redelivered event still makes one
notification."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from approval_service.events import (
    CaseApproved,
    CaseCorrectionRequested,
    CaseDenied,
    CaseNotAccepted,
)
from contracts.intake.v1 import Acceptance
from intake_service.events import (
    ApplicationCompleted,
    ApplicationNotAccepted,
)
from notify_service import delivery, repository, template_versions
from notify_service.consumers import build_consumer
from notify_service.models import ApplicationRecipient, EarlyEvent, Notification
from notify_service.templates import DEFAULT_TEMPLATES, NotificationKind
from sharing_service.events import CertificateFailed
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from tests.notify.support import (
    ID_NUMBER,
    certificate_issued,
    clean_notify,
    handle,
    notifications_of,
    notify_settings,
    seed_templates,
    submitted,
)
from wangban.db import Database
from wangban.events import envelope_for

__all__ = ["clean_notify"]


async def test_the_applicant_is_told_each_step_with_the_name_masked(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    await seed_templates(database, settings)
    subject = f"u-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    # Accepted at submission: the submit screen said 已受理, so the event only says whom the
    # application concerns.
    application = submitted(settings, subject=subject).model_copy(
        update={"acceptance": Acceptance(accepted_at=now, accepted_by="intake")}
    )
    await handle(database, settings, application)
    assert await notifications_of(database, subject) == []
    app_id = application.application_id
    await handle(
        database,
        settings,
        CaseCorrectionRequested(
            application_id=app_id,
            requested_at=now,
            reviewer="r-1",
            reason="户口簿照片不清晰",
            materials=["户口簿"],
        ),
    )
    await handle(
        database,
        settings,
        CaseApproved(
            application_id=app_id,
            item_id="i",
            item_version_id=application.item_version_id,
            item_code=application.item_code,
            decided_at=now,
            decided_by="auto",
            result_kind="certificate",
            certificate_type="elderly_allowance_notice",
        ),
    )
    await handle(
        database,
        settings,
        certificate_issued(app_id, certificate_id="c-1", at=now),
    )
    # 办结 tells nothing more: the certificate notice was the final one, and the event is not
    # even handled.
    assert ApplicationCompleted.event_type not in build_consumer(settings).handlers
    told = {n.kind: n for n in await notifications_of(database, subject)}
    assert sorted(told) == [
        "application.approved",
        "application.correction_requested",
        "certificate.issued",
    ]
    # The rating invitation goes with the certificate, not with the approval it follows.
    assert told["certificate.issued"].context["rating"] is True
    assert "好差评" in told["certificate.issued"].body
    assert told["application.approved"].context["rating"] is False
    assert "好差评" not in told["application.approved"].body
    async with database.sessionmaker() as session:
        recipient = await session.get(ApplicationRecipient, app_id)
        stored = list(await session.scalars(select(Notification)))
    assert recipient is not None and recipient.applicant_name_masked == "张**"
    everything = str([(n.title, n.body, n.context) for n in stored])
    assert "张三丰" not in everything and ID_NUMBER not in everything
    correction = next(n for n in stored if n.kind == "application.correction_requested")
    assert "户口簿照片不清晰" in correction.body and "高龄老人津贴申领" in correction.body


async def test_a_redelivered_event_makes_no_second_notification(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    subject = f"u-{uuid.uuid4().hex[:8]}"
    application = submitted(settings, subject=subject)
    await handle(database, settings, application)
    approved = CaseApproved(
        application_id=application.application_id,
        item_id="i",
        item_version_id=application.item_version_id,
        item_code=application.item_code,
        decided_at=datetime.now(UTC).isoformat(),
        decided_by="auto",
        result_kind="none",
    )
    consumer = build_consumer(settings)
    _, handler = consumer.handlers[approved.event_type]
    envelope = envelope_for(approved, source="/tests")
    for _ in range(2):  # the same envelope, as a redelivery brings it
        async with database.sessionmaker() as session, session.begin():
            await handler(session, event=approved, envelope=envelope)
    assert len(await notifications_of(database, subject)) == 1


async def test_an_application_without_an_account_notifies_nobody(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    application = submitted(settings, subject="x").model_copy(
        update={"applicant_subject_enc": None}
    )
    await handle(database, settings, application)
    await handle(
        database,
        settings,
        CaseApproved(
            application_id=application.application_id,
            item_id="i",
            item_version_id=application.item_version_id,
            item_code=application.item_code,
            decided_at=datetime.now(UTC).isoformat(),
            decided_by="auto",
            result_kind="none",
        ),
    )
    async with database.sessionmaker() as session:
        assert list(await session.scalars(select(Notification))) == []


async def test_not_accepted_at_the_window_or_in_review_tells_the_reason(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    await seed_templates(database, settings)
    subject = f"u-{uuid.uuid4().hex[:8]}"
    at_window, in_review = (
        submitted(settings, subject=subject),
        submitted(settings, subject=subject),
    )
    for application in (at_window, in_review):
        await handle(database, settings, application)
    now = datetime.now(UTC).isoformat()
    await handle(
        database,
        settings,
        ApplicationNotAccepted(
            application_id=at_window.application_id,
            item_code=at_window.item_code,
            at=now,
            reason="不属于本窗口受理范围",
        ),
    )
    await handle(
        database,
        settings,
        CaseNotAccepted(
            application_id=in_review.application_id, at=now, by="r-1", reason="申请材料不齐全"
        ),
    )
    told = {n.application_id: n for n in await notifications_of(database, subject)}
    assert {n.kind for n in told.values()} == {"application.not_accepted"}
    assert "不属于本窗口受理范围" in told[at_window.application_id].body
    assert "申请材料不齐全" in told[in_review.application_id].body


async def test_a_result_with_nothing_to_follow_invites_the_rating_itself(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    await seed_templates(database, settings)
    subject = f"u-{uuid.uuid4().hex[:8]}"
    approved, denied = submitted(settings, subject=subject), submitted(settings, subject=subject)
    for application in (approved, denied):
        await handle(database, settings, application)
    now = datetime.now(UTC).isoformat()
    await handle(
        database,
        settings,
        CaseApproved(
            application_id=approved.application_id,
            item_id="i",
            item_version_id=approved.item_version_id,
            item_code=approved.item_code,
            decided_at=now,
            decided_by="auto",
            result_kind="decision",
        ),
    )
    await handle(
        database,
        settings,
        CaseDenied(
            application_id=denied.application_id,
            decided_at=now,
            decided_by="auto",
            reason="年龄未满80周岁",
        ),
    )
    told = {n.application_id: n for n in await notifications_of(database, subject)}
    assert len(told) == 2
    for notification in told.values():
        assert notification.context["rating"] is True
        assert "好差评" in notification.body


async def test_the_seed_brings_its_own_versions_up_to_date_and_leaves_an_administrators(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    issued, approved = NotificationKind.CERTIFICATE_ISSUED, NotificationKind.APPLICATION_APPROVED
    old_page = "pages/certificates/index"  # a release before the rating link
    async with database.sessionmaker() as session, session.begin():
        for kind, by in ((issued, template_versions.SEEDED_BY), (approved, "admin-1")):
            default = next(
                body for k, c, body in DEFAULT_TEMPLATES if (k, c) == (kind, "wechat")
            ).model_dump(mode="json")
            await template_versions.save(
                session,
                kind=kind,
                channel="wechat",
                body={**default, "page": old_page},
                by=by,
                settings=settings,
            )
    await seed_templates(database, settings)
    await seed_templates(database, settings)  # and again: nothing more
    async with database.sessionmaker() as session:
        seeded = await repository.template_versions(session, kind=issued.value, channel="wechat")
        admins = await repository.template_versions(session, kind=approved.value, channel="wechat")
    assert [t.version for t in seeded] == [2, 1]
    assert "pages/ratings/new" in (seeded[0].body["page"] or "")
    assert [(t.version, t.body["page"]) for t in admins] == [(1, old_page)]


async def test_an_approval_whose_certificate_failed_is_told_without_the_certificate(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    """The approval waits for its certificate; when the certificate cannot be issued the
    citizen is still told the result at once, and told it only once when staff have put
    things right and the certificate is issued after all."""
    database = clean_notify
    settings = notify_settings(infrastructure)
    await seed_templates(database, settings)
    subject = f"u-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    application = submitted(settings, subject=subject).model_copy(
        update={"acceptance": Acceptance(accepted_at=now, accepted_by="intake")}
    )
    await handle(database, settings, application)
    app_id = application.application_id
    approval = CaseApproved(
        application_id=app_id,
        item_id="i",
        item_version_id=application.item_version_id,
        item_code=application.item_code,
        decided_at=now,
        decided_by="auto",
        result_kind="certificate",
        certificate_type="elderly_allowance_notice",
    )
    await handle(database, settings, approval)
    assert await notifications_of(database, subject) == []  # told with its certificate

    await handle(
        database,
        settings,
        CertificateFailed(
            application_id=app_id,
            type_code="elderly_allowance_notice",
            type_name="高龄津贴发放通知书",
            reason="证照必填项缺失：发放标准",
            failed_at=now,
        ),
    )
    told = await notifications_of(database, subject)
    assert [n.kind for n in told] == ["application.approved"]
    assert told[0].context["rating"] is False  # not completed yet: nothing to rate

    await handle(
        database,
        settings,
        certificate_issued(app_id, certificate_id="c-late", at=now),
    )
    told = await notifications_of(database, subject)
    assert sorted(n.kind for n in told) == ["application.approved", "certificate.issued"]


async def test_events_read_before_the_submission_are_told_when_it_arrives(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    """The submission and the certificate come on different topics: after an outage notify
    may read the certificate first. The citizen is told all the same, once, when the
    submission says whom to tell; and a redelivery of the early event waits only once."""
    database = clean_notify
    settings = notify_settings(infrastructure)
    await seed_templates(database, settings)
    subject = f"u-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    application = submitted(settings, subject=subject).model_copy(
        update={"acceptance": Acceptance(accepted_at=now, accepted_by="intake")}
    )
    issued = certificate_issued(
        application.application_id, certificate_id="c-early", at=now, valid_until="2027-12-31"
    )
    consumer = build_consumer(settings)
    _, handler = consumer.handlers[issued.event_type]
    envelope = envelope_for(issued, source="/tests")
    for _ in range(2):  # read early, and redelivered before the submission came
        async with database.sessionmaker() as session, session.begin():
            await handler(session, event=issued, envelope=envelope)
    assert await notifications_of(database, subject) == []
    async with database.sessionmaker() as session:
        waiting = list(await session.scalars(select(EarlyEvent)))
    assert sorted(e.kind for e in waiting) == ["application.approved", "certificate.issued"]

    await handle(database, settings, application)
    told = {n.kind: n for n in await notifications_of(database, subject)}
    assert sorted(told) == ["application.approved", "certificate.issued"]
    assert told["certificate.issued"].context["certificate"]["valid_until"] == "2027-12-31"
    assert told["certificate.issued"].context["rating"] is True
    async with database.sessionmaker() as session:
        assert list(await session.scalars(select(EarlyEvent))) == []
    # Redelivered after the submission: told once all the same.
    async with database.sessionmaker() as session, session.begin():
        await handler(session, event=issued, envelope=envelope)
    assert len(await notifications_of(database, subject)) == 2


async def test_an_early_event_nobody_claims_is_dropped_after_a_week(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    approved = CaseApproved(
        application_id=str(uuid.uuid4()),
        item_id="i",
        item_version_id=str(uuid.uuid4()),
        item_code="X",
        decided_at=datetime.now(UTC).isoformat(),
        decided_by="auto",
        result_kind="none",
    )
    await handle(database, settings, approved)
    now = delivery.now_utc()
    async with database.sessionmaker() as session, session.begin():
        assert await delivery.drop_stale_early_events(session, now=now) == 0
    async with database.sessionmaker() as session, session.begin():
        week_later = now + delivery.EARLY_EVENT_KEPT + timedelta(minutes=1)
        assert await delivery.drop_stale_early_events(session, now=week_later) == 1
    async with database.sessionmaker() as session:
        assert list(await session.scalars(select(EarlyEvent))) == []


async def test_a_submission_recorded_while_an_early_event_is_parked_still_tells_it(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    """The submission and the certificate handled at the same time on two partitions: the
    submission's transaction waits for the one parking the certificate, then takes it (without
    the application's lock each missed the other's uncommitted row and the citizen was never
    told)."""
    database = clean_notify
    settings = notify_settings(infrastructure)
    await seed_templates(database, settings)
    subject = f"u-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).isoformat()
    application = submitted(settings, subject=subject).model_copy(
        update={"acceptance": Acceptance(accepted_at=now, accepted_by="intake")}
    )
    issued = certificate_issued(application.application_id, certificate_id="c-race", at=now)
    _, on_issued = build_consumer(settings).handlers[issued.event_type]
    async with database.sessionmaker() as parking, parking.begin():
        await on_issued(parking, event=issued, envelope=envelope_for(issued, source="/tests"))
        recording = asyncio.create_task(handle(database, settings, application))

        async def recording_waits_for_the_lock() -> bool:
            async with database.sessionmaker() as session:
                waiting = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                )
            return bool(waiting)

        await eventually(recording_waits_for_the_lock, timeout_s=10)
        assert not recording.done()
    await recording  # the parking transaction committed: the recording goes on
    told = {n.kind for n in await notifications_of(database, subject)}
    assert told == {"application.approved", "certificate.issued"}
    async with database.sessionmaker() as session:
        assert list(await session.scalars(select(EarlyEvent))) == []
