"""Certificate status through the gateway (Trust finding 7): only officers of the issuing
department change a certificate's status, always with a reason, and every change is kept
with who made it. Another department's officer is told the certificate does not exist."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from sharing_service import certificates
from sharing_service.models import Certificate, CertificateStatusChange
from sharing_service.registry import seed_registry
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from tests.unit.synthetic import resident_id
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import Database

HOLDER = resident_id(region="441900", birth="19440208", sequence="211")
ISSUER = "东莞市民政局"  # issues elderly_allowance_notice (demo certificate types)


@pytest.fixture(scope="module")
async def gateway(infrastructure: Infrastructure, database: Database) -> AsyncIterator[Gateway]:
    async with running_gateway(infrastructure, database) as gw:
        yield gw


async def _issue(gw: Gateway) -> Certificate:
    async with gw.database.sessionmaker() as session, session.begin():
        await seed_registry(session)  # the demo certificate types (idempotent)
        return await certificates.issue_certificate(
            session,
            application_id=str(uuid.uuid4()),
            type_code="elderly_allowance_notice",
            holder=certificates.Holder(kind="person", id=HOLDER, name="李秀兰"),
            fields={"monthly_amount": 200, "start_month": "2026-12"},
            cipher=FieldCipher.from_settings(gw.settings),
            blind_index=BlindIndex.from_settings(gw.settings),
            at=datetime.now(UTC),
        )


def _status_path(certificate_id: str) -> str:
    return f"/api/v1/staff/certificates/{certificate_id}/status"


async def test_another_departments_reviewer_cannot_revoke_and_learns_nothing(
    gateway: Gateway,
) -> None:
    issued = await _issue(gateway)
    for department in ("东莞市人力资源和社会保障局", "东莞市公安局", None):
        refused = await gateway.client.post(
            _status_path(issued.id),
            json={"status": "撤销", "reason": "不是我发的证"},
            headers=gateway.staff("reviewer", department=department),
        )
        assert refused.status_code == 404, refused.text
        assert refused.json()["type"].endswith("certificate-not-found")
    # The same answer as for a certificate that does not exist.
    missing = await gateway.client.post(
        _status_path("1.2.156.3005.2.X.Y.0000000001.01.Z"),
        json={"status": "撤销", "reason": "不存在"},
        headers=gateway.staff("reviewer", department="东莞市公安局"),
    )
    assert missing.status_code == 404
    # A window clerk of the issuing department holds no role for it.
    clerk = await gateway.client.post(
        _status_path(issued.id),
        json={"status": "撤销", "reason": "窗口撤销"},
        headers=gateway.staff("window_clerk", department=ISSUER),
    )
    assert clerk.status_code == 403
    async with gateway.database.sessionmaker() as session:
        row = await session.get(Certificate, issued.id)
        assert row is not None and row.status == "有效"
        changes = (
            await session.scalars(
                select(CertificateStatusChange).where(
                    CertificateStatusChange.certificate_id == issued.id
                )
            )
        ).all()
        assert changes == []


async def test_the_issuing_departments_officers_change_status_with_a_reason(
    gateway: Gateway,
) -> None:
    issued = await _issue(gateway)
    reviewer = gateway.staff("reviewer", department=ISSUER)
    no_reason = await gateway.client.post(
        _status_path(issued.id), json={"status": "暂扣"}, headers=reviewer
    )
    assert no_reason.status_code == 422
    suspended = await gateway.client.post(
        _status_path(issued.id), json={"status": "暂扣", "reason": "核查中"}, headers=reviewer
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "暂扣"
    approver = gateway.staff("approver", department=ISSUER)
    revoked = await gateway.client.post(
        _status_path(issued.id),
        json={"status": "撤销", "reason": "重复发放"},
        headers=approver,
    )
    assert revoked.status_code == 200 and revoked.json()["status_reason"] == "重复发放"
    async with gateway.database.sessionmaker() as session:
        changes = (
            await session.scalars(
                select(CertificateStatusChange)
                .where(CertificateStatusChange.certificate_id == issued.id)
                .order_by(CertificateStatusChange.changed_at)
            )
        ).all()
    assert [(c.to_status, c.reason, c.changed_by) for c in changes] == [
        ("暂扣", "核查中", f"s-reviewer-{ISSUER}"),
        ("撤销", "重复发放", f"s-approver-{ISSUER}"),
    ]
