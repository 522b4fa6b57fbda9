"""An application whose item promises an e-certificate is 办结 only with its certificate.

Approval's decision and sharing's certificate travel on different topics. Completing on the
decision told the citizen "已办结" while the wallet stayed empty — for good when sharing could
not issue the certificate (issue 18). Now an approved certificate item waits for
``certificate.issued``; ``certificate.failed`` shows staff the problem (``certificate_failed``);
a certificate issued after all still completes and delivers it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from approval_service.events import CaseApproved
from intake_service import consumers, repository
from intake_service.applications.creation import MaterialChoice
from intake_service.models import Application
from sharing_service.events import CertificateFailed, CertificateIssued
from tests.intake.support import NOW, deliver, outbox_types, published_draft, submit_as_applicant
from wangban.settings import Settings

COMMITMENT = [{"name": "承诺书", "source": "commitment"}]


async def _approved_certificate_item(session: AsyncSession, settings: Settings) -> Application:
    application = await published_draft(
        session, settings, materials=COMMITMENT
    )  # 高龄津贴: a notice
    await submit_as_applicant(
        session, settings, application, choices=[MaterialChoice(index=0, commitment=True)]
    )
    await deliver(
        session,
        consumers.approved,
        CaseApproved(
            application_id=application.id,
            item_id=str(uuid.uuid4()),
            item_version_id=application.item_version_id or "",
            item_code=application.item_code,
            decided_at=NOW.isoformat(),
            decided_by="auto",
            result_kind="certificate",
            certificate_type="elderly_allowance_notice",
        ),
    )
    return application


def _issued(application: Application, at: datetime) -> CertificateIssued:
    return CertificateIssued(
        certificate_id=f"cert-{uuid.uuid4().hex[:8]}",
        type_code="elderly_allowance_notice",
        type_name="高龄老人津贴核发通知",
        issuer_code="11441900007330256F",
        application_id=application.id,
        holder_kind="person",
        issued_at=at.isoformat(),
        valid_until=None,
    )


async def test_an_approved_certificate_item_completes_when_its_certificate_is_issued(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await _approved_certificate_item(db_session, settings)
    assert application.status == "approved"  # not 已办结 with an empty wallet
    assert "completed" not in await outbox_types(db_session, application.id)
    await deliver(
        db_session, consumers.certificate_issued, _issued(application, NOW + timedelta(seconds=2))
    )
    assert application.status == "delivered"
    statuses = [t.to_status for t in await repository.timeline(db_session, application.id)]
    assert statuses[-3:] == ["approved", "completed", "delivered"]


async def test_a_certificate_that_cannot_be_issued_shows_staff_the_problem(
    db_session: AsyncSession, settings: Settings
) -> None:
    application = await _approved_certificate_item(db_session, settings)
    failed = CertificateFailed(
        application_id=application.id,
        type_code="elderly_allowance_notice",
        type_name="高龄老人津贴核发通知",
        reason="缺少证照项目：津贴标准（元/月）",
        failed_at=(NOW + timedelta(seconds=1)).isoformat(),
    )
    await deliver(db_session, consumers.certificate_failed, failed)
    await deliver(db_session, consumers.certificate_failed, failed)  # redelivered: once
    assert application.status == "certificate_failed"
    assert "未能出具" in application.status_reason and "津贴标准" in application.status_reason
    listed = await repository.timeline(db_session, application.id)
    assert [t.to_status for t in listed].count("certificate_failed") == 1
    assert "completed" not in await outbox_types(db_session, application.id)

    # Fixed and issued after all (the dead letter replayed): completed and delivered.
    await deliver(
        db_session, consumers.certificate_issued, _issued(application, NOW + timedelta(hours=1))
    )
    assert application.status == "delivered"
    assert (await outbox_types(db_session, application.id))[-1] == "completed"
