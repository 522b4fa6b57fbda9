"""Lookups on the real database: policy, minimisation, consent, predicates, unavailability,
and the audit record every lookup leaves, whatever its outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import lookups
from sharing_service.directory import ProviderDirectory
from sharing_service.models import Consent, LookupAudit
from sharing_service.providers import Subject
from sharing_service.registry import seed_registry
from tests.sharing.support import StaticProvider, add_grant, item_code, keys, person_id
from wangban.settings import Settings

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ELDER = person_id(date(1942, 3, 15), 101)  # 84 on NOW
YOUNGER = person_id(date(1950, 6, 1), 102)  # 76
STRANGER = person_id(date(1990, 1, 1), 103)  # no records anywhere


@pytest.fixture
def provider() -> StaticProvider:
    return StaticProvider(
        {
            ("gongan.huji", ELDER): {
                "name": "陈桂英",
                "birth_date": "1942-03-15",
                "registered_region": "441900",
                "registered_address": "东莞市莞城街道北正路12号",
            },
            ("gongan.huji", YOUNGER): {
                "name": "李国华",
                "birth_date": "1950-06-01",
                "registered_region": "430102",
            },
            ("budongchan.dengji", ELDER): {
                "owns_property_in_city": True,
                "property_count": 1,
                "properties": [
                    {"region_code": "441900", "certificate_no": "粤(2015)东莞不动产权第1号"}
                ],
            },
        }
    )


@pytest.fixture
async def registry_ready(db_session: AsyncSession) -> AsyncSession:
    await seed_registry(db_session)
    return db_session


async def _lookup(
    session: AsyncSession,
    settings: Settings,
    provider: StaticProvider,
    *,
    item: str,
    subject: str = ELDER,
    dataset: str = "gongan.huji",
    fields: list[str] | None = None,
    predicates: list[lookups.Predicate] | None = None,
    consumer: str = "approval",
    application_id: str | None = None,
) -> lookups.LookupResult:
    cipher, blind_index = keys(settings)
    return await lookups.perform_lookup(
        session,
        caller=lookups.Caller(consumer=consumer, requested_by=f"svc-{consumer}"),
        subject=Subject(kind="person", id=subject),
        dataset_code=dataset,
        fields=fields or [],
        predicates=predicates or [],
        purpose=lookups.Purpose(item_code=item, application_id=application_id),
        directory=ProviderDirectory(cipher=cipher, sandbox=provider),
        blind_index=blind_index,
        now=NOW,
    )


async def _audit(session: AsyncSession, item: str) -> list[LookupAudit]:
    rows = await session.scalars(
        select(LookupAudit).where(LookupAudit.item_code == item).order_by(LookupAudit.seq)
    )
    return list(rows)


async def test_granted_lookup_returns_only_the_fields_asked_with_their_source(
    registry_ready: AsyncSession, settings: Settings, provider: StaticProvider
) -> None:
    item = item_code()
    await add_grant(
        registry_ready,
        dataset="gongan.huji",
        item_code=item,
        disclose=["name", "registered_region", "registered_address"],
    )
    result = await _lookup(
        registry_ready, settings, provider, item=item, fields=["registered_region"]
    )
    assert result.found
    assert set(result.attributes) == {"registered_region"}
    attribute = result.attributes["registered_region"]
    assert attribute.value == "441900" and attribute.source == "government"
    assert attribute.provider == "东莞市公安局" and attribute.updated_at.year == 2026
    # The department was asked for that field only, not the whole record.
    assert provider.asked == [("gongan.huji", ["registered_region"])]
    [row] = await _audit(registry_ready, item)
    assert row.outcome == "granted" and row.fields == ["registered_region"]
    assert row.id == result.lookup_id
    assert ELDER not in row.subject_masked and row.subject_masked.endswith(ELDER[-4:])
    assert ELDER not in row.subject_ref


async def test_out_of_purpose_lookup_is_denied_and_audited(
    registry_ready: AsyncSession, settings: Settings, provider: StaticProvider
) -> None:
    granted_item, other_item = item_code(), item_code()
    await add_grant(
        registry_ready, dataset="gongan.huji", item_code=granted_item, disclose=["name"]
    )
    with pytest.raises(lookups.LookupDenied, match="未授权"):
        await _lookup(registry_ready, settings, provider, item=other_item, fields=["name"])
    with pytest.raises(lookups.LookupDenied):  # right item, another consumer
        await _lookup(
            registry_ready,
            settings,
            provider,
            item=granted_item,
            fields=["name"],
            consumer="notify",
        )
    assert provider.asked == []  # nobody's data was fetched
    [denied] = await _audit(registry_ready, other_item)
    assert denied.outcome == "denied" and "未授权" in denied.reason
    [other_consumer] = await _audit(registry_ready, granted_item)
    assert other_consumer.outcome == "denied" and other_consumer.consumer == "notify"


async def test_a_field_beyond_the_grant_denies_the_whole_lookup(
    registry_ready: AsyncSession, settings: Settings, provider: StaticProvider
) -> None:
    item = item_code()
    await add_grant(registry_ready, dataset="gongan.huji", item_code=item, disclose=["name"])
    with pytest.raises(lookups.LookupDenied, match="registered_address"):
        await _lookup(
            registry_ready,
            settings,
            provider,
            item=item,
            fields=["name", "registered_address"],
        )
    assert provider.asked == []
    [row] = await _audit(registry_ready, item)
    assert row.outcome == "denied" and row.fields == ["name", "registered_address"]


async def test_predicates_answer_yes_or_no_and_disclose_nothing_else(
    registry_ready: AsyncSession, settings: Settings, provider: StaticProvider
) -> None:
    item = item_code()
    # Verification only: the date of birth and the properties may be tested, never returned.
    await add_grant(
        registry_ready,
        dataset="gongan.huji",
        item_code=item,
        verify=["birth_date", "registered_region"],
    )
    await add_grant(
        registry_ready, dataset="budongchan.dengji", item_code=item, verify=["properties"]
    )
    over_80 = lookups.Predicate(name="over_80", field="age", op="ge", value=80)
    local = lookups.Predicate(
        name="local", field="registered_region", op="starts_with", value="4419"
    )
    elder = await _lookup(
        registry_ready, settings, provider, item=item, predicates=[over_80, local]
    )
    younger = await _lookup(
        registry_ready, settings, provider, item=item, subject=YOUNGER, predicates=[over_80, local]
    )
    assert elder.predicates == {"over_80": True, "local": True}
    assert younger.predicates == {"over_80": False, "local": False}
    assert elder.attributes == {} and younger.attributes == {}
    owns = lookups.Predicate(
        name="owns_in_city", field="properties", op="starts_with", value="4419", key="region_code"
    )
    property_check = await _lookup(
        registry_ready,
        settings,
        provider,
        item=item,
        dataset="budongchan.dengji",
        predicates=[owns],
    )
    assert property_check.predicates == {"owns_in_city": True} and property_check.attributes == {}
    # The value itself stays behind the predicate.
    with pytest.raises(lookups.LookupDenied, match="birth_date"):
        await _lookup(registry_ready, settings, provider, item=item, fields=["birth_date"])
    audited = await _audit(registry_ready, item)
    assert [r.outcome for r in audited] == ["granted", "granted", "granted", "denied"]
    assert audited[0].predicates[0] == {"name": "over_80", "field": "age", "op": "ge"}
    assert all("value" not in p for p in audited[0].predicates)  # what was asked, not the bound


async def test_no_record_is_not_found_and_predicates_are_unknown_not_false(
    registry_ready: AsyncSession, settings: Settings, provider: StaticProvider
) -> None:
    item = item_code()
    await add_grant(
        registry_ready,
        dataset="gongan.huji",
        item_code=item,
        disclose=["name"],
        verify=["birth_date"],
    )
    over_80 = lookups.Predicate(name="over_80", field="age", op="ge", value=80)
    result = await _lookup(
        registry_ready,
        settings,
        provider,
        item=item,
        subject=STRANGER,
        fields=["name"],
        predicates=[over_80],
    )
    assert not result.found and result.attributes == {}
    assert result.predicates == {"over_80": None}
    [row] = await _audit(registry_ready, item)
    assert row.outcome == "not_found"


async def test_provider_down_is_unavailable_never_not_found(
    registry_ready: AsyncSession, settings: Settings, provider: StaticProvider
) -> None:
    item = item_code()
    await add_grant(registry_ready, dataset="gongan.huji", item_code=item, disclose=["name"])
    provider.down.add("gongan.huji")
    with pytest.raises(lookups.DataUnavailable) as raised:
        await _lookup(registry_ready, settings, provider, item=item, fields=["name"])
    assert raised.value.status == 503 and raised.value.keeps_changes
    [row] = await _audit(registry_ready, item)
    assert row.outcome == "unavailable" and "connection refused" in row.reason


async def test_consent_is_required_where_the_grant_says_so(
    registry_ready: AsyncSession, settings: Settings, provider: StaticProvider
) -> None:
    item = item_code()
    application = str(uuid.uuid4())
    await add_grant(
        registry_ready, dataset="gongan.huji", item_code=item, disclose=["name"], consent=True
    )
    with pytest.raises(lookups.ConsentRequired):
        await _lookup(
            registry_ready,
            settings,
            provider,
            item=item,
            fields=["name"],
            application_id=application,
        )
    _, blind_index = keys(settings)
    consent = Consent(
        id=str(uuid.uuid4()),
        subject_ref=blind_index.resident_id(ELDER),
        item_code=item,
        application_id=application,
        granted_at=NOW - timedelta(minutes=5),
        expires_at=NOW + timedelta(days=30),
        revoked_at=None,
    )
    registry_ready.add(consent)
    await registry_ready.flush()
    granted = await _lookup(
        registry_ready, settings, provider, item=item, fields=["name"], application_id=application
    )
    assert granted.attributes["name"].value == "陈桂英"
    # A consent given for one application does not cover another.
    with pytest.raises(lookups.ConsentRequired):
        await _lookup(
            registry_ready,
            settings,
            provider,
            item=item,
            fields=["name"],
            application_id=str(uuid.uuid4()),
        )
    consent.revoked_at = NOW - timedelta(minutes=1)
    await registry_ready.flush()
    with pytest.raises(lookups.ConsentRequired):
        await _lookup(
            registry_ready,
            settings,
            provider,
            item=item,
            fields=["name"],
            application_id=application,
        )
    outcomes = [r.outcome for r in await _audit(registry_ready, item)]
    assert outcomes == ["denied", "granted", "denied", "denied"]


@pytest.mark.parametrize(
    ("subject", "dataset", "fields", "message"),
    [
        ("441900194203151230", "gongan.huji", ["name"], "校验位"),
        (ELDER, "no.such.dataset", ["name"], "没有数据集"),
        (ELDER, "gongan.huji", ["shoe_size"], "shoe_size"),
        (ELDER, "shichang.zhizhao", ["status"], "法人"),
    ],
)
async def test_invalid_requests_are_refused_before_anything_is_asked_or_written(
    registry_ready: AsyncSession,
    settings: Settings,
    provider: StaticProvider,
    subject: str,
    dataset: str,
    fields: list[str],
    message: str,
) -> None:
    item = item_code()
    expected: Any = (lookups.UnknownDataset, lookups.InvalidLookup)
    with pytest.raises(expected, match=message):
        await _lookup(
            registry_ready,
            settings,
            provider,
            item=item,
            subject=subject,
            dataset=dataset,
            fields=fields,
        )
    assert provider.asked == [] and await _audit(registry_ready, item) == []


async def test_the_sandbox_never_answers_where_it_is_not_allowed(
    registry_ready: AsyncSession, settings: Settings, provider: StaticProvider
) -> None:
    item = item_code()
    await add_grant(registry_ready, dataset="gongan.huji", item_code=item, disclose=["name"])
    cipher, blind_index = keys(settings)
    with pytest.raises(lookups.DataUnavailable):
        await lookups.perform_lookup(
            registry_ready,
            caller=lookups.Caller(consumer="approval", requested_by="approval"),
            subject=Subject(kind="person", id=ELDER),
            dataset_code="gongan.huji",
            fields=["name"],
            predicates=[],
            purpose=lookups.Purpose(item_code=item),
            directory=ProviderDirectory(cipher=cipher, sandbox=provider, allow_sandbox=False),
            blind_index=blind_index,
            now=NOW,
        )
    assert provider.asked == []
    [row] = await _audit(registry_ready, item)
    assert row.outcome == "unavailable" and "sandbox" in row.reason
