"""The e-certificate library on the real database: issue once, sign, verify, change status,
rotate keys, reuse as evidence."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service.events import CaseApproved
from sandbox import ELDERLY_ALLOWANCE
from sharing_service import certificates, materials
from sharing_service.certificate_ids import CertificateId
from sharing_service.certificates import CertificateStatus, Holder, Verdict
from sharing_service.configuration import ConfigurationCache
from sharing_service.consumers import HOLDER_CONTEXT, build_consumer
from sharing_service.lookups import Caller
from sharing_service.models import Certificate, CertificateSerial, SigningKey
from sharing_service.providers import Subject
from sharing_service.registry import seed_registry
from sharing_service.signing import SigningKey as Ed25519Key
from tests.kit.support import eventually
from tests.sharing.support import StaticProvider, add_item_version, item_code, keys, person_id
from wangban.db import Database
from wangban.events import envelope_for
from wangban.settings import Settings

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HOLDER = Holder(kind="person", id=person_id(date(1942, 3, 15), 201), name="陈桂英")
ALLOWANCE = {"monthly_amount": 200, "start_month": "2026-12"}


@pytest.fixture
async def library(db_session: AsyncSession) -> AsyncSession:
    await seed_registry(db_session)
    return db_session


async def _issue(
    session: AsyncSession,
    settings: Settings,
    *,
    application_id: str | None = None,
    **overrides: Any,
) -> Certificate:
    cipher, blind_index = keys(settings)
    values: dict[str, Any] = {
        "application_id": application_id or str(uuid.uuid4()),
        "type_code": "elderly_allowance_notice",
        "holder": HOLDER,
        "fields": ALLOWANCE,
        "at": AT,
    }
    values.update(overrides)
    return await certificates.issue_certificate(
        session, cipher=cipher, blind_index=blind_index, **values
    )


async def _verify(
    session: AsyncSession, settings: Settings, **kwargs: Any
) -> certificates.Verification:
    cipher, _ = keys(settings)
    return await certificates.verify(session, cipher=cipher, today=AT.date(), **kwargs)


async def test_an_issued_certificate_is_signed_identified_and_verifies(
    library: AsyncSession, settings: Settings
) -> None:
    row = await _issue(library, settings)
    cipher, _ = keys(settings)
    document = certificates.read_document(row, cipher=cipher)
    assert document["holder"] == {"kind": "person", "name": "陈桂英", "id": HOLDER.id}
    assert document["issuer"]["code"] == "11441900007330256F"
    assert document["fields"] == ALLOWANCE and document["id"] == row.id
    assert row.id.startswith("1.2.156.3005.2.ELDERLY_ALLOWANCE_NOTICE.11441900007330256F.")
    assert HOLDER.id not in row.document_enc and "陈桂英" not in row.document_enc
    by_id = await _verify(library, settings, certificate_id=row.id)
    by_qr = await _verify(library, settings, qr=certificates.qr_of(row, cipher=cipher))
    assert by_id.verdict == by_qr.verdict == Verdict.VALID


async def test_the_same_approval_twice_issues_one_certificate(
    library: AsyncSession, settings: Settings
) -> None:
    cipher, _ = keys(settings)
    event = CaseApproved(
        application_id=str(uuid.uuid4()),
        item_id=str(uuid.uuid4()),
        item_version_id=str(uuid.uuid4()),
        item_code=ELDERLY_ALLOWANCE,
        decided_at=AT.isoformat(),
        decided_by="auto",
        result_kind="certificate",
        certificate_type="elderly_allowance_notice",
        certificate_fields=ALLOWANCE,
        holder_kind="person",
        holder_name_enc=cipher.encrypt(HOLDER.name, context=HOLDER_CONTEXT),
        holder_id_enc=cipher.encrypt(HOLDER.id, context=HOLDER_CONTEXT),
    )
    _, handler = build_consumer(settings).handlers[CaseApproved.event_type]
    # Two deliveries with different envelopes (a re-sent decision), not only a redelivery:
    # the inbox cannot catch this one, the library must.
    for _ in range(2):
        await handler(library, event=event, envelope=envelope_for(event, source="/test"))
    issued = (
        await library.scalars(
            select(Certificate).where(Certificate.application_id == event.application_id)
        )
    ).all()
    assert len(issued) == 1
    # The event partners can read carries the holder only as ciphertext.
    dumped = json.dumps(event.model_dump(), ensure_ascii=False)
    assert HOLDER.id not in dumped and HOLDER.name not in dumped


async def test_a_changed_field_fails_verification(
    library: AsyncSession, settings: Settings
) -> None:
    row = await _issue(library, settings)
    cipher, _ = keys(settings)
    document = certificates.read_document(row, cipher=cipher)
    document["fields"]["monthly_amount"] = 2000  # someone edits the library
    row.document_enc = cipher.encrypt(
        json.dumps(document, ensure_ascii=False), context=f"sharing.certificate:{row.id}"
    )
    await library.flush()
    result = await _verify(library, settings, certificate_id=row.id)
    assert result.verdict == Verdict.FORGED and "签名" in result.reason


async def test_a_wrong_key_fails_verification(library: AsyncSession, settings: Settings) -> None:
    row = await _issue(library, settings)
    key = await library.get(SigningKey, row.kid)
    assert key is not None
    key.public_key = Ed25519Key.generate(kid=row.kid).public_key().to_b64()
    await library.flush()
    result = await _verify(library, settings, certificate_id=row.id)
    assert result.verdict == Verdict.FORGED


async def test_unknown_ids_bad_check_characters_and_foreign_qr_codes_are_forged(
    library: AsyncSession, settings: Settings
) -> None:
    row = await _issue(library, settings)
    cipher, _ = keys(settings)
    wrong_check = row.id[:-1] + ("0" if row.id[-1] != "0" else "1")
    assert (await _verify(library, settings, certificate_id=wrong_check)).verdict == Verdict.FORGED
    qr = certificates.qr_of(row, cipher=cipher)
    other = await _issue(library, settings)
    foreign = (
        qr.rsplit(":", 1)[0] + ":" + certificates.qr_of(other, cipher=cipher).rsplit(":", 1)[1]
    )
    result = await _verify(library, settings, qr=foreign)
    assert result.verdict == Verdict.FORGED and "二维码" in result.reason
    assert (await _verify(library, settings, qr="hello")).verdict == Verdict.FORGED


async def test_status_changes_with_reasons_and_revoked_certificates_fail(
    library: AsyncSession, settings: Settings
) -> None:
    row = await _issue(library, settings)
    await certificates.change_status(
        library,
        certificate_id=row.id,
        to_status=CertificateStatus.SUSPENDED,
        reason="核查中",
        changed_by="reviewer-1",
        officer_department="东莞市民政局",
    )
    suspended = await _verify(library, settings, certificate_id=row.id)
    assert suspended.verdict == Verdict.REVOKED and "暂扣" in suspended.reason
    await certificates.change_status(
        library,
        certificate_id=row.id,
        to_status=CertificateStatus.VALID,
        reason="核查无误，恢复",
        changed_by="reviewer-1",
        officer_department="东莞市民政局",
    )
    assert (await _verify(library, settings, certificate_id=row.id)).verdict == Verdict.VALID
    await certificates.change_status(
        library,
        certificate_id=row.id,
        to_status=CertificateStatus.REVOKED,
        reason="申请材料虚假",
        changed_by="reviewer-1",
        officer_department="东莞市民政局",
    )
    revoked = await _verify(library, settings, certificate_id=row.id)
    assert revoked.verdict == Verdict.REVOKED and "申请材料虚假" in revoked.reason
    with pytest.raises(certificates.StatusChangeNotAllowed):
        await certificates.change_status(
            library,
            certificate_id=row.id,
            to_status=CertificateStatus.VALID,
            reason="想恢复",
            changed_by="reviewer-1",
            officer_department="东莞市民政局",
        )


async def test_expired_certificates_say_so(library: AsyncSession, settings: Settings) -> None:
    row = await _issue(
        library,
        settings,
        type_code="disability_card",
        fields={"disability_category": "肢体", "disability_level": "二级", "card_no": "X1"},
        at=AT - timedelta(days=3651),
    )
    result = await _verify(library, settings, certificate_id=row.id)
    assert result.verdict == Verdict.EXPIRED


async def test_key_rotation_keeps_old_certificates_valid(
    library: AsyncSession, settings: Settings
) -> None:
    cipher, _ = keys(settings)
    before = await _issue(library, settings)
    await certificates.create_signing_key(
        library, issuer_code="11441900007330256F", cipher=cipher, at=AT + timedelta(minutes=1)
    )
    after = await _issue(library, settings, at=AT + timedelta(minutes=2))
    assert before.kid != after.kid
    old_key = await library.get(SigningKey, before.kid)
    assert old_key is not None and old_key.retired_at is not None
    assert (await _verify(library, settings, certificate_id=before.id)).verdict == Verdict.VALID
    assert (await _verify(library, settings, certificate_id=after.id)).verdict == Verdict.VALID


async def test_certificate_data_is_checked_against_its_type(
    library: AsyncSession, settings: Settings
) -> None:
    with pytest.raises(certificates.InvalidCertificateData, match="残疾人证号"):
        await _issue(
            library,
            settings,
            type_code="disability_card",
            fields={"disability_category": "肢体", "disability_level": "二级"},
        )
    # The decision may carry the whole form: only the type's fields are stated, defaults fill in.
    issued = await _issue(library, settings, fields={"bank_account": "6222", "monthly_amount": 300})
    cipher, _ = keys(settings)
    assert certificates.read_document(issued, cipher=cipher)["fields"] == {
        "monthly_amount": 300,
        "start_month": "自审批通过次月起",
    }
    with pytest.raises(certificates.InvalidCertificateData, match="法人"):
        await _issue(library, settings, type_code="business_license")
    with pytest.raises(certificates.UnknownCertificateType):
        await _issue(library, settings, type_code="no_such_type")


async def test_numbers_the_department_assigns_at_issue_come_from_the_serial(
    library: AsyncSession, settings: Settings
) -> None:
    """结婚证字号, 许可证编号, 不动产权证号 are given at issue: written from the certificate's
    流水号 by the type's format; a number the form carries (a reissued certificate keeps
    its own) wins; a certificate that cannot be issued uses up no number."""
    cipher, _ = keys(settings)

    def stated(row: Certificate) -> dict[str, Any]:
        return dict(certificates.read_document(row, cipher=cipher)["fields"])

    def serial(row: Certificate) -> int:
        return CertificateId.parse(row.id).serial

    first = await _issue(
        library, settings, type_code="marriage_certificate", fields={"partner_name": "李四"}
    )
    assert stated(first)["certificate_no"] == f"J441900-2026-{serial(first):06d}"
    with pytest.raises(certificates.InvalidCertificateData, match="配偶姓名"):
        await _issue(library, settings, type_code="marriage_certificate", fields={})
    second = await _issue(
        library, settings, type_code="marriage_certificate", fields={"partner_name": "王五"}
    )
    assert serial(second) == serial(first) + 1
    assert stated(second)["certificate_no"] == f"J441900-2026-{serial(second):06d}"

    property_facts = {"property_address": "东莞市南城街道宏图路120号", "area_m2": 89.5}
    transferred = await _issue(
        library,
        settings,
        type_code="property_certificate",
        fields={**property_facts, "usage": "住宅"},
    )
    assert stated(transferred)["certificate_no"] == (
        f"粤（2026）东莞市不动产权第{serial(transferred):07d}号"
    )
    assert stated(transferred)["area_m2"] == "89.5"
    reissued = await _issue(
        library,
        settings,
        type_code="property_certificate",
        fields={
            **property_facts,
            "usage": "住宅",
            "certificate_number": "粤（2019）东莞市不动产权第0123456号",
        },
    )
    assert stated(reissued)["certificate_no"] == "粤（2019）东莞市不动产权第0123456号"


def test_a_number_format_is_checked_when_used() -> None:
    declared = {"name": "no", "title": "编号", "number_format": "No.{serial:06d}/{year}"}
    assert certificates.assigned_number(declared, serial=42, at=date(2026, 1, 2)) == (
        "No.000042/2026"
    )
    with pytest.raises(certificates.InvalidCertificateData, match="编号格式"):
        certificates.assigned_number(
            {**declared, "number_format": "{unknown}"}, serial=1, at=date(2026, 1, 2)
        )
    sources = [{"name": "no", "title": "编号", "from": ["form.no", "serial"]}]
    assert certificates.unobtainable_fields(sources, form_schema=None, holder_kind="company") == []


async def test_a_certificate_in_the_wallet_satisfies_a_material_and_is_audited(
    library: AsyncSession, settings: Settings
) -> None:
    _, blind_index = keys(settings)
    issued = await _issue(library, settings)
    code = item_code()
    version_id = await add_item_version(
        library,
        item_code=code,
        materials=[
            {"name": "高龄津贴核发通知", "source": "certificate:elderly_allowance_notice"},
            {"name": "出生医学证明", "source": "certificate:birth_medical_certificate"},
            {"name": "申请表", "source": "upload"},
            {"name": "告知承诺书", "source": "commitment"},
        ],
    )
    resolved = await materials.resolve_materials(
        library,
        caller=Caller(consumer="intake", requested_by="intake"),
        item_version_id=version_id,
        applicant=Subject(kind="person", id=HOLDER.id),
        application_id="app-1",
        directory=_NoProviders(),
        blind_index=blind_index,
        now=AT + timedelta(hours=1),
    )
    assert [r.status for r in resolved] == ["satisfied", "not_found", "upload", "commitment"]
    assert resolved[0].evidence == materials.Evidence(kind="certificate", id=issued.id)
    assert [r.needs_upload for r in resolved] == [False, True, True, False]


class _NoProviders:
    async def provider_for(self, session: AsyncSession, dataset: Any) -> tuple[str, StaticProvider]:
        raise AssertionError("no dataset lookups expected")


async def test_issuing_writes_the_number_the_certificate_and_its_event_and_reads_nothing(
    settings: Settings, database: Database
) -> None:
    """On ``case.approved`` in a running service (registry cached): one statement takes the
    number unless the application has its certificate already, then the certificate and its
    event. Nothing it just wrote is read back; a second approval takes no number."""
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
    cache = ConfigurationCache(database)
    await cache.run_once()
    statements: list[str] = []

    def count(_c: object, _cursor: object, statement: str, *_: object) -> None:
        table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+([\w.]+)", statement, re.IGNORECASE)
        statements.append(f"{statement.split()[0].upper()} {table.group(1) if table else ''}")

    async def issue(application_id: str) -> Certificate:
        async with database.sessionmaker() as session, session.begin():
            return await _issue(session, settings, application_id=application_id)

    engine = database.engine.sync_engine
    writes = [
        "INSERT sharing.certificate_serial",
        "INSERT sharing.certificate",
        "INSERT sharing.outbox",
    ]
    issued: Certificate | None = None
    event.listen(engine, "before_cursor_execute", count)
    try:

        async def issued_by_writes_alone() -> bool:
            # Until the type and the issuer's key are cached (a first key created by the first
            # issue drops the keys cached before its notification arrives).
            nonlocal issued
            statements.clear()
            issued = await issue(str(uuid.uuid4()))
            return statements == writes

        await eventually(issued_by_writes_alone, timeout_s=10)
        assert issued is not None
        application_id = issued.application_id
        statements.clear()
        again = await issue(application_id)
        assert again.id == issued.id
        # The number was not taken; the certificate issued is read once, to answer with it.
        assert statements == ["INSERT sharing.certificate_serial", "SELECT sharing.certificate"]
    finally:
        event.remove(engine, "before_cursor_execute", count)
        await cache.close()
    serial = CertificateId.parse(issued.id).serial
    async with database.read_sessionmaker() as session:
        next_serial = await session.scalar(
            select(CertificateSerial.next_serial).where(
                CertificateSerial.type_code == "elderly_allowance_notice"
            )
        )
    assert next_serial == serial + 1  # the second approval took no number
