"""The sandbox provider: a consistent synthetic population, exactly the fields of
``datasets.json``, data minimisation, outages; and the demo personas, checked by evaluating the
real 秒批 rules of ``catalog_service/demo/items.json`` against the sandbox's own answers."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import celpy
import pytest
from celpy import celtypes
from jsonschema import Draft202012Validator

from sandbox import (
    BIRTH_CERTIFICATE,
    COMPANIES,
    CST,
    INSURANCE_PROOF,
    PERSONAS,
    PROPERTY_QUERY,
    SOURCES,
    ItemClaim,
    Outcome,
    Persona,
    SandboxPopulation,
    SandboxProvider,
)
from sharing_service.providers import ProviderUnavailable, Subject
from wangban.identifiers import (
    age_on,
    birth_date_of,
    gender_of,
    is_valid_resident_id,
    is_valid_uscc,
    region_of,
)

ROOT = Path(__file__).resolve().parents[2]
DATASETS = {
    dataset["code"]: dataset
    for dataset in json.loads(
        (ROOT / "sharing_service" / "demo" / "datasets.json").read_text(encoding="utf-8")
    )["datasets"]
}
FIELD_TYPES = {
    code: {f["name"]: f["type"] for f in dataset["fields"]} for code, dataset in DATASETS.items()
}
ITEMS = {
    item["implementing_code"]: item
    for item in json.loads(
        (ROOT / "catalog_service" / "demo" / "items.json").read_text(encoding="utf-8")
    )
    if item.get("auto_approval")
}
TODAY = date(2026, 11, 23)
PERSONA = {persona.key: persona for persona in PERSONAS}
COMPANY = {company.uscc: company for company in COMPANIES}


@lru_cache(maxsize=4)
def population(today: date = TODAY) -> SandboxPopulation:
    return SandboxPopulation.build(today=today)


def records(dataset: str, today: date = TODAY) -> dict[str, dict[str, Any]]:
    pop = population(today)
    return {subject: pop.record(dataset, subject) or {} for subject in pop.subjects(dataset)}


# --- the population ------------------------------------------------------------------------


def test_builds_a_bounded_population_deterministically() -> None:
    # Built at every start of the demo provider: its size, not a wall-clock time (which a busy
    # machine stretches), is what keeps the build cheap.
    first = SandboxPopulation.build(today=TODAY)
    second = SandboxPopulation.build(today=TODAY)
    for dataset in DATASETS:
        assert first.subjects(dataset) == second.subjects(dataset)
        for subject in first.subjects(dataset):
            assert first.record(dataset, subject) == second.record(dataset, subject)
            assert first.stored(dataset, subject) == second.stored(dataset, subject)
    assert 250 <= len(first.person_ids) <= 1000


def test_named_identities_do_not_depend_on_the_reference_date() -> None:
    later = population(date(2028, 2, 29))
    for persona in PERSONAS:
        assert later.record("gongan.huji", persona.id_number) == population().record(
            "gongan.huji", persona.id_number
        )


@pytest.mark.parametrize("today", [TODAY, date(2028, 2, 29)])
def test_every_person_has_a_valid_number_matching_their_registration(today: date) -> None:
    huji = records("gongan.huji", today)
    assert len(set(huji)) == len(huji)
    for number, person in huji.items():
        assert is_valid_resident_id(number, today=today)
        assert person["birth_date"] == birth_date_of(number).isoformat()
        assert person["gender"] == gender_of(number)
        assert re.fullmatch(r"[0-9]{6}", person["registered_region"])


def test_people_live_in_dongguan_and_elsewhere() -> None:
    huji = records("gongan.huji")
    regions = Counter(person["registered_region"] for person in huji.values())
    assert regions["441900"] >= 150
    assert len(regions) >= 5
    assert {"430102", "510104"} <= set(regions)
    towns = {
        town
        for person in huji.values()
        for town in ("南城街道", "东城街道", "莞城街道", "长安镇", "虎门镇", "麻涌镇")
        if town in person["registered_address"]
    }
    assert len(towns) >= 5


def test_households_are_consistent() -> None:
    huji = records("gongan.huji")
    by_household: dict[str, list[str]] = defaultdict(list)
    for number, person in huji.items():
        by_household[person["household_id"]].append(number)
    for members in by_household.values():
        first = huji[members[0]]
        listing = first["household_members"]
        assert sorted(m["id_number"] for m in listing) == sorted(members)
        assert [m["relation"] for m in listing].count("户主") == 1
        for number in members:
            person = huji[number]
            assert person["household_members"] == listing
            assert person["registered_address"] == first["registered_address"]
            assert person["registered_region"] == first["registered_region"]
            entry = next(m for m in listing if m["id_number"] == number)
            assert entry == {
                "name": person["name"],
                "id_number": number,
                "relation": person["relation_to_head"],
            }


def test_marriages_point_both_ways() -> None:
    huji = records("gongan.huji")
    hunyin = records("minzheng.hunyin")
    married = {n: r for n, r in hunyin.items() if r["marital_status"] == "已婚"}
    assert len(married) >= 40
    for number, record in married.items():
        spouse = record["spouse_id_number"]
        assert hunyin[spouse]["spouse_id_number"] == number
        assert hunyin[spouse]["registered_on"] == record["registered_on"]
        assert record["spouse_name"] == huji[spouse]["name"]
        assert gender_of(spouse) != gender_of(number)
        on = date.fromisoformat(record["registered_on"])
        assert age_on(number, today=on) >= 20
        assert on < TODAY
    for number, record in hunyin.items():
        assert number in huji
        assert age_on(number, today=TODAY) >= 18
        if record["marital_status"] == "未婚":
            assert set(record) == {"marital_status"}


def test_births_are_found_by_either_parent_and_match_the_marriage() -> None:
    births = records("weijian.chusheng")
    hunyin = records("minzheng.hunyin")
    assert len(births) >= 6
    for number, birth in births.items():
        mother, father = birth["mother_id_number"], birth["father_id_number"]
        assert number in (mother, father)
        assert births[mother] == births[father] == birth
        assert gender_of(mother) == "女" and gender_of(father) == "男"
        assert hunyin[mother]["spouse_id_number"] == father
        born = date.fromisoformat(birth["birth_date"])
        assert birth_date_of(mother) < born <= TODAY
        assert birth["child_gender"] in ("男", "女")
        assert birth["hospital"].startswith("东莞")


def test_the_new_mothers_babies_were_born_about_two_months_ago() -> None:
    for key in ("zhang_lijuan", "liu_jianguo", "wang_fang"):
        record = population().record("weijian.chusheng", PERSONA[key].id_number)
        assert record is not None
        age_days = (TODAY - date.fromisoformat(record["birth_date"])).days
        assert 40 <= age_days <= 70
    newborn = population().record("weijian.chusheng", PERSONA["zhang_lijuan"].id_number)
    assert newborn is not None
    assert newborn["hospital"] == "东莞市妇幼保健院"


def test_property_records() -> None:
    budongchan = records("budongchan.dengji")
    huji = records("gongan.huji")
    assert set(huji) | {c.uscc for c in COMPANIES} == set(budongchan)
    certificates: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in budongchan.values():
        in_city = [p for p in record["properties"] if p["region_code"].startswith("4419")]
        assert record["owns_property_in_city"] is bool(in_city)
        assert record["property_count"] == len(in_city)
        for entry in record["properties"]:
            assert set(entry) == {
                "certificate_no",
                "region_code",
                "address",
                "area_m2",
                "registered_on",
            }
            assert isinstance(entry["area_m2"], float)
            certificates[entry["certificate_no"]].append(entry)
    for copies in certificates.values():
        assert all(entry == copies[0] for entry in copies)
    # Co-owned by a couple: the same certificate in both records.
    assert any(len(copies) == 2 for copies in certificates.values())
    # Owning a home elsewhere does not count as owning one in 东莞.
    luo = budongchan[PERSONA["luo_wenhua"].id_number]
    assert luo["owns_property_in_city"] is False and len(luo["properties"]) == 1


def test_companies() -> None:
    huji = records("gongan.huji")
    licences = records("shichang.zhizhao")
    taxes = records("shuiwu.nashui")
    assert any(not company.uscc[0].isdigit() for company in COMPANIES)
    assert {company.uscc[:2] for company in COMPANIES} >= {"91", "92", "93", "N2"}
    assert {company.status for company in COMPANIES} >= {"存续", "吊销", "注销", None}
    for company in COMPANIES:
        assert is_valid_uscc(company.uscc)
        assert huji[company.representative_id]["name"] == company.representative
        assert company.uscc in taxes
        if company.status is None:
            assert company.uscc not in licences
        else:
            licence = licences[company.uscc]
            assert licence["status"] == company.status
            assert licence["uscc"] == company.uscc
            assert licence["legal_representative_id_number"] == company.representative_id
    for record in records("renshe.shebao").values():
        if "employer_uscc" in record:
            assert COMPANY[record["employer_uscc"]].name == record["employer_name"]


def test_ages_match_insurance_and_pensions() -> None:
    for number, record in records("renshe.shebao").items():
        age = age_on(number, today=TODAY)
        assert age >= 16
        assert record["insured_months"] <= (age - 16) * 12
        if record["pension_status"] == "已领取":
            assert age >= 50 and record["insured"] is False
    for number, record in records("gjj.jiaocun").items():
        assert record["account_status"] in ("正常", "封存", "冻结")
        assert age_on(number, today=TODAY) >= 18


_PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "date": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "list": list,
}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_fields_are_exactly_those_of_datasets_json(dataset: str) -> None:
    types = FIELD_TYPES[dataset]
    seen: set[str] = set()
    table = records(dataset)
    assert table, f"no records in {dataset}"
    for record in table.values():
        assert set(record) <= set(types), set(record) - set(types)
        seen |= set(record)
        for name, value in record.items():
            expected = _PYTHON_TYPES[types[name]]
            assert type(value) is expected, (dataset, name, type(value))
            if types[name] == "date":
                assert isinstance(value, str)
                date.fromisoformat(value)
    assert seen == set(types), set(types) - seen


def test_list_fields_have_the_documented_shape() -> None:
    for record in records("gongan.huji").values():
        for member in record["household_members"]:
            assert set(member) == {"name", "id_number", "relation"}
    insurance = {
        kind for record in records("renshe.shebao").values() for kind in record["insurance_type"]
    }
    assert insurance == {"企业职工基本养老保险", "城乡居民养老保险", "失业保险", "工伤保险"}
    medical = {record["type"] for record in records("yibao.canbao").values()}
    assert medical == {"职工基本医疗保险", "城乡居民基本医疗保险"}
    levels = {record["disability_level"] for record in records("minzheng.canji").values()}
    assert levels <= {"一级", "二级", "三级", "四级"}
    credit = {
        record["credit_level"]
        for record in records("shuiwu.nashui").values()
        if "credit_level" in record
    }
    assert credit <= {"A", "B", "M", "C", "D"}


# --- the provider --------------------------------------------------------------------------


async def test_fetch_returns_only_the_requested_fields() -> None:
    provider = SandboxProvider(population())
    subject = Subject(kind="person", id=PERSONA["chen_bingkun"].id_number)
    record = await provider.fetch(
        dataset="gongan.huji",
        subject=subject,
        fields=["name", "registered_region", "no_such_field"],
        request_id="req-1",
    )
    assert record is not None
    assert record.values == {"name": "陈炳坤", "registered_region": "441900"}
    assert record.source == SOURCES["gongan.huji"]
    assert record.updated_at.tzinfo is not None
    assert record.updated_at.utcoffset() == timedelta(hours=8)
    assert record.updated_at < datetime.combine(TODAY, datetime.min.time(), tzinfo=CST)
    empty = await provider.fetch(dataset="gongan.huji", subject=subject, fields=[], request_id="r")
    assert empty is not None and empty.values == {}


async def test_fetched_values_are_copies() -> None:
    provider = SandboxProvider(population())
    subject = Subject(kind="person", id=PERSONA["chen_bingkun"].id_number)
    first = await provider.fetch(
        dataset="gongan.huji", subject=subject, fields=["household_members"], request_id="r"
    )
    assert first is not None
    first.values["household_members"].clear()
    again = await provider.fetch(
        dataset="gongan.huji", subject=subject, fields=["household_members"], request_id="r"
    )
    assert again is not None and len(again.values["household_members"]) == 5


async def test_lower_case_check_character_finds_the_record() -> None:
    x_numbers = [n for n in population().person_ids if n.endswith("X")]
    assert x_numbers
    provider = SandboxProvider(population())
    subject = Subject(kind="person", id=x_numbers[0][:-1] + "x")
    record = await provider.fetch(
        dataset="gongan.huji", subject=subject, fields=["name"], request_id="r"
    )
    assert record is not None


async def test_no_record_is_none() -> None:
    provider = SandboxProvider(population())
    unknown = Subject(kind="person", id="110101199003079999")
    assert (
        await provider.fetch(
            dataset="gongan.huji", subject=unknown, fields=["name"], request_id="r"
        )
        is None
    )
    child = Subject(kind="person", id=PERSONA["chen_siqi"].id_number)
    assert (
        await provider.fetch(
            dataset="gjj.jiaocun", subject=child, fields=["balance"], request_id="r"
        )
        is None
    )
    company = Subject(kind="company", id=COMPANIES[0].uscc)
    assert (
        await provider.fetch(
            dataset="gongan.huji", subject=company, fields=["name"], request_id="r"
        )
        is None
    )
    collective = Subject(kind="company", id=PERSONA["li_guifen"].companies[0])
    assert (
        await provider.fetch(
            dataset="shichang.zhizhao", subject=collective, fields=["status"], request_id="r"
        )
        is None
    )


async def test_unavailable_datasets_raise() -> None:
    provider = SandboxProvider(
        population(), unavailable_datasets=frozenset({"gjj.jiaocun", "shuiwu.nashui"})
    )
    subject = Subject(kind="person", id=PERSONA["luo_wenhua"].id_number)
    for dataset in ("gjj.jiaocun", "shuiwu.nashui"):
        with pytest.raises(ProviderUnavailable):
            await provider.fetch(dataset=dataset, subject=subject, fields=["x"], request_id="r")
    unknown = Subject(kind="person", id="110101199003079999")
    with pytest.raises(ProviderUnavailable):  # an outage is never "no record"
        await provider.fetch(dataset="gjj.jiaocun", subject=unknown, fields=["x"], request_id="r")
    still = await provider.fetch(
        dataset="gongan.huji", subject=subject, fields=["name"], request_id="r"
    )
    assert still is not None
    with pytest.raises(ProviderUnavailable):
        await provider.fetch(dataset="nope.nope", subject=subject, fields=["x"], request_id="r")
    await provider.close()
    with pytest.raises(ProviderUnavailable):
        await provider.fetch(
            dataset="gongan.huji", subject=subject, fields=["name"], request_id="r"
        )


async def test_default_provider_is_built_for_today() -> None:
    provider = SandboxProvider()
    assert provider.population.today == date.today()
    assert SandboxProvider(today=TODAY).population.today == TODAY


# --- personas -----------------------------------------------------------------------------


def test_personas_are_well_formed() -> None:
    assert len(PERSONAS) >= 10
    assert len(PERSONA) == len(PERSONAS)
    assert len({p.id_number for p in PERSONAS}) == len(PERSONAS)
    for persona in PERSONAS:
        assert is_valid_resident_id(persona.id_number)
        assert persona.id_number not in repr(persona)
        record = population().record("gongan.huji", persona.id_number)
        assert record is not None and record["name"] == persona.name
        codes = [claim.item_code for claim in persona.claims]
        assert len(codes) == len(set(codes)), f"{persona.key}: one claim per item"
        assert set(persona.forms) == set(codes)
        assert all(claim.outcome == "pass" for claim in persona.passes)
        assert all(claim.outcome != "pass" for claim in persona.fails)
        for claim in persona.claims:
            item = ITEMS[claim.item_code]
            if claim.as_company:
                assert claim.as_company in persona.companies
                assert COMPANY[claim.as_company].representative_id == persona.id_number
            if claim.rule is not None:
                rule = next(r for r in item["rules"] if r["name"] == claim.rule)
                # A refusing rule decides a referral too when its data has no record.
                assert claim.outcome == "refer" or not rule.get("refer")
            else:
                assert claim.outcome == "pass"


@pytest.mark.parametrize("today", [TODAY, date(2028, 2, 29)])
def test_sample_forms_are_valid(today: date) -> None:
    for persona in PERSONAS:
        for code in persona.forms:
            form = persona.form(code, today=today)
            Draft202012Validator(ITEMS[code]["form_schema"]).validate(form)


def test_every_auto_approved_item_has_a_passing_and_a_failing_persona() -> None:
    passes: dict[str, list[str]] = defaultdict(list)
    data_failures: dict[str, list[str]] = defaultdict(list)
    for persona in PERSONAS:
        for claim in persona.passes:
            passes[claim.item_code].append(persona.key)
        for claim in persona.fails:
            rule = next(r for r in ITEMS[claim.item_code]["rules"] if r["name"] == claim.rule)
            if rule["needs"] and claim.outcome == "reject":
                data_failures[claim.item_code].append(persona.key)
    assert set(passes) == set(ITEMS)
    # 不动产登记信息查询's only data rule refers to a person (it fails only when the registry
    # cannot answer), so no data can make it refuse. The data rules of 社保参保证明 and
    # 出生医学证明 refuse only a record that exists but is empty (no months paid, no birth
    # date), which no persona has: an applicant without a record is referred, never refused.
    assert set(data_failures) == set(ITEMS) - {PROPERTY_QUERY, INSURANCE_PROOF, BIRTH_CERTIFICATE}


_ENV = celpy.Environment()
_SHARED_FIELD = re.compile(r'shared\["([^"]+)"\]\.([A-Za-z_][A-Za-z0-9_]*)')
_ZERO: dict[str, Any] = {
    "string": "",
    "date": "",
    "integer": 0,
    "number": 0.0,
    "boolean": False,
    "list": [],
}


@cache
def _program(expression: str) -> Any:
    return _ENV.program(_ENV.compile(expression))


def _fields_read(item: dict[str, Any]) -> dict[str, set[str]]:
    """Dataset → the fields the item's rules read: what the approval service would ask."""
    fields: dict[str, set[str]] = defaultdict(set)
    for rule in item["rules"]:
        for dataset in rule["needs"]:
            fields[dataset]
        for dataset, name in _SHARED_FIELD.findall(rule["expression"]):
            fields[dataset].add(name)
    return fields


async def _context(
    provider: SandboxProvider,
    persona: Persona,
    claim: ItemClaim,
    *,
    today: date,
    missing: str,
) -> dict[str, Any]:
    item = ITEMS[claim.item_code]
    if claim.as_company:
        subject = Subject(kind="company", id=claim.as_company)
        applicant: dict[str, Any] = {"kind": "company", "region_code": claim.as_company[2:8]}
    else:
        subject = Subject(kind="person", id=persona.id_number)
        applicant = {
            "kind": "person",
            "age": age_on(persona.id_number, today=today),
            "region_code": region_of(persona.id_number),
        }
    shared: dict[str, dict[str, Any]] = {}
    for dataset, names in _fields_read(item).items():
        record = await provider.fetch(
            dataset=dataset, subject=subject, fields=sorted(names), request_id="test"
        )
        if record is None:
            continue  # no record: the rules that need the dataset are not evaluated
        values = dict(record.values)
        if missing == "zero":
            for name in names:
                values.setdefault(name, _ZERO[FIELD_TYPES[dataset][name]])
        shared[dataset] = values
    return {
        "shared": shared,
        "applicant": applicant,
        "form": persona.form(claim.item_code, today=today),
        "today": today.isoformat(),
    }


def _evaluate(item: dict[str, Any], context: dict[str, Any]) -> tuple[Outcome, str | None]:
    """Every rule must be true. A rule that errs (a field the record lacks) counts as not
    satisfied; one needing a dataset without a record is not evaluated and can only refer (the
    machine never refuses for missing data). The deciding rule is the first failing one that
    refuses, else the first failing one that refers to a person."""
    activation = {name: celpy.json_to_cel(value) for name, value in context.items()}
    failing: list[dict[str, Any]] = []
    for rule in item["rules"]:
        if any(d not in context["shared"] for d in rule["needs"]):
            failing.append({**rule, "refer": True})
            continue
        try:
            result = _program(rule["expression"]).evaluate(activation)
        except celpy.CELEvalError:
            result = None
        if not (isinstance(result, celtypes.BoolType) and bool(result)):
            failing.append(rule)
    refusing = [rule for rule in failing if not rule.get("refer")]
    if refusing:
        return "reject", refusing[0]["name"]
    if failing:
        return "refer", failing[0]["name"]
    return "pass", None


_CLAIMS = [(persona, claim) for persona in PERSONAS for claim in persona.claims]


@pytest.mark.parametrize("missing", ["absent", "zero"])
@pytest.mark.parametrize("today", [date.today(), date(2028, 2, 29)], ids=["today", "2028-02-29"])
@pytest.mark.parametrize(
    ("persona", "claim"),
    _CLAIMS,
    ids=[f"{p.key}-{ITEMS[c.item_code]['name']}" for p, c in _CLAIMS],
)
async def test_persona_outcomes_follow_from_the_rules(
    persona: Persona, claim: ItemClaim, today: date, missing: str
) -> None:
    """``missing``: whether an absent record is an empty map (rules reading it err) or one
    filled with zero values of the field types; the documented outcome holds either way."""
    provider = SandboxProvider(population(today))
    context = await _context(provider, persona, claim, today=today, missing=missing)
    outcome, rule = _evaluate(ITEMS[claim.item_code], context)
    assert (outcome, rule) == (claim.outcome, claim.rule)


def test_demo_guide_lists_every_persona_and_company() -> None:
    guide = (ROOT / "docs" / "demo.md").read_text(encoding="utf-8")
    # Compare by key so that a failure names the persona, not the number.
    missing = [p.key for p in PERSONAS if p.id_number not in guide or p.name not in guide]
    assert not missing, f"docs/demo.md lacks these personas' ID numbers or names: {missing}"
    items = {ITEMS[c.item_code]["name"] for p in PERSONAS for c in p.claims}
    assert not [name for name in items if name not in guide]
    assert not [c.key for c in COMPANIES if c.uscc not in guide or c.name not in guide]
