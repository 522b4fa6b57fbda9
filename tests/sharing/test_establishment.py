"""设立登记: a licence held by the entity the approval registers, under a credit code the
registering authority assigns at issue, shown in its founder's wallet."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service.events import CaseApproved
from sharing_service import certificates
from sharing_service.certificates import Holder, InvalidCertificateData
from sharing_service.consumers import FORM_CONTEXT, HOLDER_CONTEXT, build_consumer
from sharing_service.lookups import subject_ref
from sharing_service.models import Certificate, CreditCodeSerial
from sharing_service.providers import Subject
from sharing_service.registry import seed_registry
from tests.sharing.support import company_id, keys, person_id
from wangban import identifiers
from wangban.events import envelope_for
from wangban.settings import Settings

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
FOUNDER = Holder(kind="person", id=person_id(date(1985, 6, 1), 317), name="周伟强")
SOLE_TRADER = {
    "business_name": "东莞市虎门伟强货运代理部",
    "organization_form": "个人经营",
    "business_address": "广东省东莞市虎门镇太沙路88号",
    "business_scope": "普通货物仓储服务；国内货物运输代理",
    "capital_yuan": 100000,
}


@pytest.fixture
async def library(db_session: AsyncSession) -> AsyncSession:
    await seed_registry(db_session)
    return db_session


async def _establish(session: AsyncSession, settings: Settings, **overrides: Any) -> Certificate:
    cipher, blind_index = keys(settings)
    values: dict[str, Any] = {
        "application_id": str(uuid.uuid4()),
        "type_code": "business_license",
        "holder": FOUNDER,
        "fields": SOLE_TRADER,
        "establishes": "个体工商户",
        "at": AT,
    }
    values.update(overrides)
    return await certificates.issue_certificate(
        session, cipher=cipher, blind_index=blind_index, **values
    )


async def _codes_assigned(session: AsyncSession) -> int:
    taken = await session.scalar(select(func.coalesce(func.sum(CreditCodeSerial.next_serial), 0)))
    return int(taken or 0)


async def test_the_licence_is_held_by_the_new_entity_under_a_code_assigned_at_issue(
    library: AsyncSession, settings: Settings
) -> None:
    row = await _establish(library, settings)
    cipher, blind_index = keys(settings)
    document = certificates.read_document(row, cipher=cipher)
    holder = document["holder"]
    assert holder["kind"] == "company" and holder["name"] == "东莞市虎门伟强货运代理部"
    # 9 市场监管, 2 个体工商户, the registering authority's region, a code never issued before.
    assert identifiers.validate_uscc(holder["id"]) == holder["id"]
    assert holder["id"].startswith("92441900MA")
    assert document["fields"]["entity_type"] == "个体工商户"
    assert document["fields"]["operator"] == "周伟强"
    assert document["fields"]["established_on"] == AT.date().isoformat()
    assert row.holder_ref == subject_ref(blind_index, Subject(kind="company", id=holder["id"]))
    # The founder's wallet shows it; the licence does not name the founder's ID number.
    founder_ref = subject_ref(blind_index, Subject(kind="person", id=FOUNDER.id))
    assert row.founder_ref == founder_ref
    assert [c.id for c in await certificates.wallet(library, holder=founder_ref)] == [row.id]
    assert certificates.in_wallet_of(row, holder=founder_ref)
    assert FOUNDER.id not in str(document)
    assert (await certificates.verify(library, certificate_id=row.id, cipher=cipher)).verdict == (
        certificates.Verdict.VALID
    )


async def test_each_registration_gets_its_own_code_and_a_company_is_an_enterprise(
    library: AsyncSession, settings: Settings
) -> None:
    cipher, _ = keys(settings)
    first = await _establish(library, settings)
    second = await _establish(library, settings)
    company = await _establish(
        library,
        settings,
        establishes="有限责任公司",
        fields={
            "company_name": "东莞市鑫达供应链管理有限公司",
            "registered_address": "广东省东莞市虎门镇虎门大道312号",
            "business_scope": "供应链管理服务",
            "registered_capital": 200,
        },
    )
    codes = [
        certificates.read_document(r, cipher=cipher)["holder"]["id"]
        for r in (first, second, company)
    ]
    assert len(set(codes)) == 3
    assert codes[2].startswith("91441900MA")
    assert certificates.read_document(company, cipher=cipher)["fields"]["entity_type"] == (
        "有限责任公司"
    )


async def test_the_same_approval_again_assigns_no_second_code(
    library: AsyncSession, settings: Settings
) -> None:
    application_id = str(uuid.uuid4())
    first = await _establish(library, settings, application_id=application_id)
    taken = await _codes_assigned(library)
    again = await _establish(library, settings, application_id=application_id)
    assert again.id == first.id and await _codes_assigned(library) == taken


async def test_a_licence_without_a_name_is_refused_before_a_code_is_taken(
    library: AsyncSession, settings: Settings
) -> None:
    taken = await _codes_assigned(library)
    unnamed = {k: v for k, v in SOLE_TRADER.items() if k != "business_name"}
    with pytest.raises(InvalidCertificateData, match="名称"):
        await _establish(library, settings, fields=unnamed)
    assert await _codes_assigned(library) == taken


async def test_only_an_entitys_licence_can_establish_one(
    library: AsyncSession, settings: Settings
) -> None:
    with pytest.raises(InvalidCertificateData, match="设立登记"):
        await _establish(
            library,
            settings,
            type_code="elderly_allowance_notice",
            fields={"monthly_amount": 200, "start_month": "2026-12"},
        )


async def test_without_establishing_an_existing_entitys_licence_still_needs_its_dates(
    library: AsyncSession, settings: Settings
) -> None:
    """A 变更 licence (an entity that exists) is not given today as its 成立日期 nor the
    applicant as its 经营者: those sources speak only for a registration."""
    with pytest.raises(InvalidCertificateData, match="成立日期"):
        await _establish(
            library,
            settings,
            establishes=None,
            holder=Holder(kind="company", id=company_id(), name="东莞市恒发五金有限公司"),
            fields={
                "name": "东莞市恒发五金有限公司",
                "entity_type": "有限责任公司",
                "operator": "周伟强",
                "address": "广东省东莞市长安镇锦厦路19号",
                "business_scope": "五金产品批发",
            },
        )


async def test_case_approved_for_a_registration_issues_the_entitys_licence(
    library: AsyncSession, settings: Settings
) -> None:
    """Through the consumer, as approval's decision arrives: the event names the founder,
    ``establishes`` says an entity is registered, and certificate.issued says a company holds
    the licence."""
    cipher, _ = keys(settings)
    event = CaseApproved(
        application_id=str(uuid.uuid4()),
        item_id=str(uuid.uuid4()),
        item_version_id=str(uuid.uuid4()),
        item_code="114419000073310646-000801001000-01",
        decided_at=AT.isoformat(),
        decided_by="auto",
        result_kind="certificate",
        certificate_type="business_license",
        certificate_facts_enc=cipher.encrypt(
            json.dumps(SOLE_TRADER, ensure_ascii=False), context=FORM_CONTEXT
        ),
        holder_kind="person",
        holder_name_enc=cipher.encrypt(FOUNDER.name, context=HOLDER_CONTEXT),
        holder_id_enc=cipher.encrypt(FOUNDER.id, context=HOLDER_CONTEXT),
        establishes="个体工商户",
    )
    _, handler = build_consumer(settings).handlers[CaseApproved.event_type]
    await handler(library, event=event, envelope=envelope_for(event, source="/test"))
    row = (
        await library.scalars(
            select(Certificate).where(Certificate.application_id == event.application_id)
        )
    ).one()
    assert row.holder_kind == "company"
    envelopes = (
        await library.execute(
            text("SELECT envelope FROM sharing.outbox WHERE event_type = :t"),
            {"t": "cn.wangban.sharing.certificate.issued.v1"},
        )
    ).scalars()
    assert any(
        e["data"]["application_id"] == event.application_id
        and e["data"]["holder_kind"] == "company"
        for e in envelopes
    )
