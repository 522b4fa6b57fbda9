"""The demo catalogue (东莞市) is well-formed: it validates, its 秒批 rules compile, its
forms are valid JSON Schemas, and it has the shape the articles describe."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import celpy
import pytest
from jsonschema import Draft202012Validator

from catalog_service.schemas import BundleContent, ItemContent, ItemType

DEMO = Path(__file__).resolve().parents[2] / "catalog_service" / "demo"

DATASETS = {
    "gongan.huji",
    "minzheng.hunyin",
    "weijian.chusheng",
    "renshe.shebao",
    "gjj.jiaocun",
    "budongchan.dengji",
    "shichang.zhizhao",
    "shuiwu.nashui",
    "minzheng.canji",
    "yibao.canbao",
}
CERTIFICATES = {
    "resident_id_card",
    "household_register",
    "marriage_certificate",
    "birth_medical_certificate",
    "business_license",
    "property_certificate",
    "disability_card",
    "elderly_allowance_notice",
    "pension_decision",
    "food_business_license",
}
SHARED_READ = re.compile(r'shared\["([^"]+)"\]')


def _load(name: str) -> list[dict[str, Any]]:
    data = json.loads((DEMO / name).read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


RAW_ITEMS = _load("items.json")
RAW_BUNDLES = _load("bundles.json")
ITEMS = [ItemContent.model_validate(raw) for raw in RAW_ITEMS]
BUNDLES = [BundleContent.model_validate(raw) for raw in RAW_BUNDLES]
BY_CODE = {item.implementing_code: item for item in ITEMS}
AUTO = [item for item in ITEMS if item.auto_approval]


def test_size_departments_and_types() -> None:
    assert len(ITEMS) >= 60
    assert len({item.department for item in ITEMS}) >= 10
    types = Counter(item.item_type for item in ITEMS)
    assert set(types) == set(ItemType)
    assert min(types.values()) >= 2


def test_codes_are_unique() -> None:
    assert len(BY_CODE) == len(ITEMS)
    assert len({bundle.code for bundle in BUNDLES}) == len(BUNDLES)


def test_time_limits_and_visits() -> None:
    for item in ITEMS:
        assert item.legal_days is not None and item.committed_days is not None, item.name
        assert item.committed_days <= item.legal_days, item.name
        assert item.online_depth is not None and item.visits is not None, item.name
        if item.online_depth == 4:
            assert item.visits == 0, item.name
    on_the_spot = sum(item.committed_days == 0 for item in ITEMS) / len(ITEMS)
    assert 0.6 <= on_the_spot <= 0.9


def test_material_sources_name_known_datasets_and_certificates() -> None:
    for item in ITEMS:
        for material in item.materials:
            kind, _, name = material.source.partition(":")
            if kind == "shared":
                assert name in DATASETS, (item.name, material.name)
            elif kind == "certificate":
                assert name in CERTIFICATES, (item.name, material.name)
    tolerated = [m for item in ITEMS for m in item.materials if m.may_be_missing]
    assert len(tolerated) >= 10


def test_auto_approval_rules() -> None:
    env = celpy.Environment()
    assert len(AUTO) >= 12
    for raw, item in zip(RAW_ITEMS, ITEMS, strict=True):
        if not item.auto_approval:
            assert not item.rules, item.name
            continue
        assert item.rules and "result_kind" in raw, item.name
        for rule in item.rules:
            env.compile(rule.expression)  # raises on a syntax error
            assert set(rule.needs) <= DATASETS, (item.name, rule.name)
            reads = set(SHARED_READ.findall(rule.expression))
            assert reads <= set(rule.needs), (
                item.name,
                rule.name,
                "reads a dataset it does not need",
            )
        assert len({rule.name for rule in item.rules}) == len(item.rules), item.name


def test_certificate_results_name_a_certificate_type() -> None:
    for item in ITEMS:
        if item.result_kind == "certificate":
            assert item.certificate_type in CERTIFICATES, item.name
        else:
            assert item.certificate_type is None, item.name


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.name)
def test_online_items_have_a_valid_form(item: ItemContent) -> None:
    assert item.online_depth is not None
    if item.online_depth < 3:
        return
    schema = item.form_schema
    assert schema is not None, "depth ≥ 3 needs a form"
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert set(schema["required"]) <= set(schema["properties"])
    assert all(prop.get("title") for prop in schema["properties"].values())


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda bundle: bundle.name)
def test_bundle_members_and_field_maps(bundle: BundleContent) -> None:
    Draft202012Validator.check_schema(bundle.form_schema)
    bundle_fields = set(bundle.form_schema["properties"])
    for member in bundle.members:
        item = BY_CODE.get(member.implementing_code)
        assert item is not None and item.form_schema is not None, member.implementing_code
        member_fields = set(item.form_schema["properties"])
        for source, target in member.field_map.items():
            assert source in bundle_fields, (bundle.name, source)
            assert target in member_fields, (bundle.name, item.name, target)
        assert set(item.form_schema["required"]) <= set(member.field_map.values()), item.name
