"""Catalogue import and export on the real database: the real Guang'an list (1135 items of 34
departments, names and codes only) becomes drafts that cannot be published until completed,
bad files are refused whole with every bad row named, re-imports change nothing, and our own
JSON and CSV exports re-import unchanged."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import importer, search, service
from catalog_service.importer import GUANGAN_MAPPING, ImportRejected
from catalog_service.jobs import JobWorker
from catalog_service.models import Item, ItemVersion
from catalog_service.repository import ItemFilters
from catalog_service.schemas import ItemContent
from tests.catalog.jobs_support import drain, worker_in_test_transaction
from tests.catalog.support import GUANGAN_CSV, rich_item
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.db import Database, _read_only, _unit_of_work
from wangban.services import load_spec
from wangban.settings import Settings

GUANGAN_HEADER = "department,main_item,name,item_code,task_type,area_code"


def guangan_rows() -> list[dict[str, str]]:
    with GUANGAN_CSV.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


async def counts(session: AsyncSession) -> tuple[int, int]:
    items = (await session.execute(select(func.count()).select_from(Item))).scalar_one()
    versions = (await session.execute(select(func.count()).select_from(ItemVersion))).scalar_one()
    return int(items), int(versions)


async def newest_by_code(session: AsyncSession, codes: list[str]) -> dict[str, ItemVersion]:
    return await importer._newest_versions(session, codes)


def test_test_data_is_the_published_list() -> None:
    rows = guangan_rows()
    assert len(rows) == 1135
    assert len({r["department"] for r in rows}) == 34
    assert ",".join(rows[0]) == GUANGAN_HEADER


# --- the real Guang'an list -------------------------------------------------------------------


async def test_guangan_list_imports_as_drafts_and_reimport_changes_nothing(
    db_session: AsyncSession,
) -> None:
    rows = guangan_rows()
    data = GUANGAN_CSV.read_bytes()
    before = await counts(db_session)

    started = time.perf_counter()
    report = await importer.import_items(db_session, data=data, fmt="csv", mapping=GUANGAN_MAPPING)
    elapsed = time.perf_counter() - started
    print(f"\nGuang'an import: {len(rows)} rows in {elapsed:.2f} s")

    assert (report.rows, report.created, report.updated, report.unchanged) == (1135, 1135, 0, 0)
    assert report.published == 0 and report.drafts_incomplete == 1135
    assert report.created_codes == [r["item_code"] for r in rows]
    # Every column feeds a field: main_item is the item's 主项 (issue 18).
    assert report.ignored_columns == []
    # Names and codes only: every draft lacks the same seven elements.
    assert report.missing_elements == dict.fromkeys(
        [
            "legal_basis",
            "legal_days",
            "committed_days",
            "conditions",
            "channels",
            "online_depth",
            "visits",
        ],
        1135,
    )
    assert await counts(db_session) == (before[0] + 1135, before[1] + 1135)

    codes = [r["item_code"] for r in rows]
    newest = await newest_by_code(db_session, codes)
    assert {v.status for v in newest.values()} == {"draft"} and len(newest) == 1135
    by_department = Counter(v.department for v in newest.values())
    assert by_department == Counter(r["department"] for r in rows)
    assert len(by_department) == 34
    type_counts = Counter(v.item_type for v in newest.values())
    assert type_counts == {
        "行政许可": 536,
        "公共服务": 348,
        "其他行政权力": 182,
        "行政确认": 50,
        "行政给付": 9,
        "行政裁决": 8,
        "行政奖励": 2,
    }
    sample = newest["G-000007-001-511602000000-000-115113010833722043-1-00"]
    assert sample.content["catalog_code"] == "G-000007-001"
    assert sample.content["department_level"] == "区"
    assert newest[codes[0]].content["catalog_code"] == "511Z07001006"
    # The list's 主项 is kept; 未分类 (unclassified) means the item is no sub-item.
    main_items = {r["item_code"]: r["main_item"] for r in rows if r["main_item"] != "未分类"}
    assert len(main_items) == 520
    assert {c: v.content["main_item"] for c, v in newest.items() if v.content["main_item"]} == (
        main_items
    )
    assert all(
        service.publication_problems(ItemContent.model_validate(v.content)) for v in newest.values()
    )
    with pytest.raises(service.NotPublishable, match="缺少设定依据"):
        await service.publish_version(db_session, version_id=newest[codes[0]].id)

    started = time.perf_counter()
    again = await importer.import_items(db_session, data=data, fmt="csv", mapping=GUANGAN_MAPPING)
    print(f"Guang'an re-import (all unchanged): {time.perf_counter() - started:.2f} s")
    assert (again.created, again.updated, again.unchanged, again.published) == (0, 0, 1135, 0)
    assert await counts(db_session) == (before[0] + 1135, before[1] + 1135)


async def test_completed_rows_publish_and_are_found_by_search(db_session: AsyncSession) -> None:
    rows = guangan_rows()
    await importer.import_items(
        db_session, data=GUANGAN_CSV.read_bytes(), fmt="csv", mapping=GUANGAN_MAPPING
    )
    elderly = [r for r in rows if "养老" in r["name"]]
    assert len(elderly) == 28

    # Drafts are not what citizens search: nothing of the list is found yet.
    found = await service.search_items(
        db_session, query="养老", filters=ItemFilters(), page_size=100
    )
    guangan_codes = {r["item_code"] for r in rows}
    assert not [v for v in found.items if v.implementing_code in guangan_codes]

    # The department completes its elderly-care items in the same spreadsheet and re-imports.
    completion = {
        "legal_basis": "《中华人民共和国老年人权益保障法》",
        "legal_days": "20",
        "committed_days": "5",
        "conditions": "符合条件的申请人",
        "channels": "网上;窗口",
        "online_depth": "2",
        "visits": "1",
    }
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*rows[0], *completion])
    writer.writeheader()
    writer.writerows({**r, **completion} for r in elderly)
    report = await importer.import_items(
        db_session,
        data=buffer.getvalue(),
        fmt="csv",
        mapping=GUANGAN_MAPPING,
        publish_complete=True,
    )
    assert (report.updated, report.published, report.drafts_incomplete) == (28, 28, 0)

    found = await service.search_items(
        db_session, query="养老", filters=ItemFilters(), page_size=100
    )
    hits = {v.implementing_code: v.name for v in found.items}
    assert {c for c in hits if c in guangan_codes} == {r["item_code"] for r in elderly}
    assert all("养老" in name for code, name in hits.items() if code in guangan_codes)
    # The best hit of a longer query is an item that says exactly that.
    best = await service.search_items(
        db_session, query="养老保险待遇", filters=ItemFilters(department="区人社局"), page_size=5
    )
    assert best.items and "养老保险" in best.items[0].name


async def test_search_terms_of_all_imported_drafts(db_session: AsyncSession) -> None:
    """Every draft is indexed on import: the stored vectors of the 1135 drafts match real words
    of their names as a published item's would."""
    rows = guangan_rows()
    await importer.import_items(
        db_session, data=GUANGAN_CSV.read_bytes(), fmt="csv", mapping=GUANGAN_MAPPING
    )
    codes = [r["item_code"] for r in rows]
    for word in ("备案", "残疾", "医疗保险"):
        tsquery = search.tsquery_for(word, synonyms=search.SynonymTable([]))
        assert tsquery is not None
        matched = (
            await db_session.execute(
                select(ItemVersion.name)
                .join(Item, Item.id == ItemVersion.item_id)
                .where(
                    Item.implementing_code.in_(codes),
                    ItemVersion.search.op("@@")(
                        func.to_tsquery(text("'simple'::regconfig"), literal(tsquery))
                    ),
                )
            )
        ).scalars()
        names = set(matched)
        expected = {r["name"] for r in rows if word in r["name"]}
        assert expected and expected <= names, (word, expected - names)


# --- a bad file -------------------------------------------------------------------------------


async def test_a_file_with_bad_rows_is_refused_whole(db_session: AsyncSession) -> None:
    header = GUANGAN_HEADER + ",legal_days,committed_days"
    lines = [
        header,
        "区民政局,未分类,最低生活保障金给付,TEST-IMPORT-1,5,511602000000,20,5",
        "区民政局,未分类,临时救助金给付,TEST-IMPORT-2,99,511602000000,,",
        "区民政局,未分类,特困人员救助供养,TEST-IMPORT-3,5,511602000000,10,15",
        "区民政局,未分类,重名的事项,TEST-IMPORT-1,5,511602000000,,",
        '区民政局,未分类,"名称带逗号,也没关系",TEST-IMPORT-5,20,5116,x,',
    ]
    before = await counts(db_session)
    with pytest.raises(ImportRejected) as refused:
        await importer.import_items(
            db_session, data="\n".join(lines), fmt="csv", mapping=GUANGAN_MAPPING
        )
    errors = [(e["row"], e["column"], e["reason"]) for e in refused.value.extra["errors"]]
    assert errors == [
        (3, "task_type", errors[0][2]),
        (4, "committed_days", "承诺办结时限不能超过法定办结时限"),
        (5, "item_code", "实施编码 TEST-IMPORT-1 与第2行重复"),
        (6, "legal_days", "应为整数"),
        (6, "area_code", "应为 6 位或 12 位数字的行政区划代码"),
    ]
    assert "未知的事项类型代码“99”" in errors[0][2] and "20 公共服务" in errors[0][2]
    problem = refused.value
    assert problem.status == 422 and problem.type_slug == "import-rejected"
    assert problem.detail is not None and "5 处错误（涉及 4 行）" in problem.detail
    first = problem.extra["errors"][0]
    assert first["pointer"] == "/items/3/task_type" and first["detail"].startswith("第3行")
    # Row 2 was fine, yet nothing at all was written.
    assert await counts(db_session) == before


async def test_file_level_problems_are_reported(db_session: AsyncSession) -> None:
    with pytest.raises(ImportRejected) as missing_columns:
        importer.parse_items("department,name\n区民政局,某某事项\n", fmt="csv")
    assert {e["column"] for e in missing_columns.value.extra["errors"]} == {
        "catalog_code",
        "implementing_code",
        "item_type",
        "region_code",
    }
    assert all(e["row"] == 1 for e in missing_columns.value.extra["errors"])
    with pytest.raises(ImportRejected, match="不是合法的 JSON"):
        importer.parse_items("[{", fmt="json")
    with pytest.raises(ImportRejected, match="没有事项"):
        importer.parse_items(GUANGAN_HEADER + "\n", fmt="csv", mapping=GUANGAN_MAPPING)
    with pytest.raises(ImportRejected) as unknown_key:
        importer.parse_items(json.dumps([{**rich_item("J-1"), "colour": "red"}]), fmt="json")
    assert [(e["row"], e["column"]) for e in unknown_key.value.extra["errors"]] == [(1, "colour")]
    # Excel on Chinese Windows writes GBK.
    gbk = (GUANGAN_HEADER + "\n区民政局,未分类,临时救助金给付,GBK-1,5,511602000000\n").encode("gbk")
    parsed = importer.parse_items(gbk, fmt="csv", mapping=GUANGAN_MAPPING)
    assert parsed.rows[0].content.name == "临时救助金给付"
    with pytest.raises(importer.ImportTooLarge, match="1135 个事项，一次最多导入 1000 个"):
        importer.parse_items(
            GUANGAN_CSV.read_bytes(), fmt="csv", mapping=GUANGAN_MAPPING, max_rows=1000
        )


# --- revisions --------------------------------------------------------------------------------


async def test_changed_rows_become_drafts_and_published_versions_stay(
    db_session: AsyncSession,
) -> None:
    code = f"REV-{uuid.uuid4().hex[:8]}"
    first = await importer.import_items(db_session, data=json.dumps([rich_item(code)]), fmt="json")
    assert first.created == 1 and first.drafts_incomplete == 0 and first.published == 0
    version = (await newest_by_code(db_session, [code]))[code]
    await service.publish_version(db_session, version_id=version.id)

    renamed = json.dumps([rich_item(code, name="高龄老人津贴申领")])
    second = await importer.import_items(db_session, data=renamed, fmt="json")
    assert (second.updated, second.created, second.unchanged) == (1, 0, 0)
    draft = (await newest_by_code(db_session, [code]))[code]
    assert draft.version == 2 and draft.status == "draft" and draft.name == "高龄老人津贴申领"
    current = await service.get_current(db_session, item_id=draft.item_id)
    assert current.id == version.id and current.name == "高龄津贴申领"

    third = await importer.import_items(
        db_session, data=json.dumps([rich_item(code, name="高龄津贴申请")]), fmt="json"
    )
    assert third.updated == 1
    after = (await newest_by_code(db_session, [code]))[code]
    assert after.id == draft.id and after.version == 2 and after.name == "高龄津贴申请"

    same = await importer.import_items(
        db_session,
        data=json.dumps([rich_item(code, name="高龄津贴申请")]),
        fmt="json",
        publish_complete=True,
    )
    assert (same.unchanged, same.published) == (1, 1)
    assert (await service.get_current(db_session, item_id=draft.item_id)).id == draft.id


async def test_materials_from_a_second_csv(db_session: AsyncSession) -> None:
    items = GUANGAN_HEADER + "\n区民政局,未分类,临时救助金给付,MAT-1,5,511602000000\n"
    materials = (
        "implementing_code,name,required,copies,source\n"
        "MAT-1,居民身份证,是,1,certificate:id_card\n"
        "MAT-1,困难情况说明,否,,commitment\n"
    )
    report = await importer.import_items(
        db_session, data=items, fmt="csv", mapping=GUANGAN_MAPPING, materials=materials
    )
    assert report.created == 1
    version = (await newest_by_code(db_session, ["MAT-1"]))["MAT-1"]
    materials_of = ItemContent.model_validate(version.content).materials
    assert [(m.name, m.required, m.copies, m.source) for m in materials_of] == [
        ("居民身份证", True, 1, "certificate:id_card"),
        ("困难情况说明", False, 0, "commitment"),
    ]

    before = await counts(db_session)
    wrong = (
        "implementing_code,name,copies,source\n"
        "MAT-1,居民身份证,11,upload\n"
        "MAT-9,户口簿,,somewhere\n"
    )
    with pytest.raises(ImportRejected) as refused:
        await importer.import_items(
            db_session, data=items, fmt="csv", mapping=GUANGAN_MAPPING, materials=wrong
        )
    errors = [(e["file"], e["row"], e["column"]) for e in refused.value.extra["errors"]]
    assert errors == [
        ("materials", 2, "copies"),
        ("materials", 3, "source"),
        ("materials", 3, "implementing_code"),
    ]
    assert await counts(db_session) == before


def test_mappings_are_validated() -> None:
    assert importer.resolve_mapping("guangan") is GUANGAN_MAPPING
    custom = importer.resolve_mapping(
        '{"columns": {"name": "事项名称"}, "type_codes": {"01": "行政许可"}}'
    )
    assert custom.source("name") == "事项名称" and custom.source("department") == "department"
    with pytest.raises(importer.InvalidMapping):
        importer.resolve_mapping("beijing")
    with pytest.raises(importer.InvalidMapping, match="不是事项字段"):
        importer.resolve_mapping('{"columns": {"title": "事项名称"}}')
    with pytest.raises(importer.InvalidMapping, match="不是事项类型"):
        importer.resolve_mapping('{"type_codes": {"1": "许可"}}')
    assert importer.derive_catalog_code("511A0138000000-511602000000-000-1-00") == "511A0138000000"
    assert importer.derive_catalog_code("E-000021-001-1111111111111111") == "E-000021-001"
    assert importer.derive_catalog_code("PLAIN") == "PLAIN"


# --- round trips ------------------------------------------------------------------------------


async def _some_items(session: AsyncSession) -> list[str]:
    """A published item, a complete draft and a bare draft, next to whatever else is there."""
    tag = uuid.uuid4().hex[:8]
    codes = [f"RT-{tag}-{n}" for n in range(3)]
    bare = {
        key: value
        for key, value in rich_item(codes[2]).items()
        if key
        in ("catalog_code", "implementing_code", "name", "item_type", "department", "region_code")
    }
    contents = [rich_item(codes[0]), rich_item(codes[1], serves=["法人", "自然人"]), bare]
    await importer.import_items(session, data=json.dumps(contents), fmt="json")
    first = (await newest_by_code(session, codes[:1]))[codes[0]]
    await service.publish_version(session, version_id=first.id)
    return codes


@pytest.mark.parametrize("fmt", ["json", "csv"])
async def test_export_reimports_unchanged(db_session: AsyncSession, fmt: importer.Format) -> None:
    codes = await _some_items(db_session)
    await importer.import_items(
        db_session,
        data=(GUANGAN_HEADER + "\n区民政局,未分类,临时救助金给付,RT-GA-1,5,511602000000\n"),
        fmt="csv",
        mapping=GUANGAN_MAPPING,
    )
    exported = await importer.export_items(db_session, fmt=fmt)
    before = await counts(db_session)

    report = await importer.import_items(db_session, data=exported, fmt=fmt)

    assert report.rows == before[0]
    assert (report.created, report.updated, report.published) == (0, 0, 0)
    assert report.unchanged == before[0] and report.ignored_columns == []
    assert await counts(db_session) == before
    assert await importer.export_items(db_session, fmt=fmt) == exported
    assert set(codes) | {"RT-GA-1"} <= set(report.unchanged_codes)
    if fmt == "csv":
        header = exported.splitlines()[0].split(",")
        assert header == list(ItemContent.model_fields)


# --- HTTP -------------------------------------------------------------------------------------


def _admin(settings: Settings, *roles: str) -> dict[str, str]:
    identity = Identity(
        subject="admin-1",
        kind="staff",
        # The sample lists span a city's departments: imported by the platform catalogue role.
        roles=frozenset(roles or {"catalog_admin", "platform_catalog_admin"}),
        department=None,
        region=None,
        assurance=AssuranceLevel.REAL_NAME,
    )
    token = InternalTokens.from_settings(settings).issue(identity, issuer="gateway")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(
    settings: Settings, database: Database, db_session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    """The catalog app, its unit of work on the test's session, so the test leaves no trace."""
    app: FastAPI = create_service_app(load_spec("catalog"), settings, background=False)

    async def test_session() -> AsyncIterator[AsyncSession]:
        yield db_session
        await db_session.flush()

    app.dependency_overrides[_unit_of_work] = test_session
    # Reads too (the job a request stored is not committed): the same transaction.
    app.dependency_overrides[_read_only] = test_session
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as http:
            yield http


async def _imported(
    client: httpx.AsyncClient, worker: JobWorker, answer: httpx.Response, settings: Settings
) -> dict[str, Any]:
    """The finished job of an import request (202), after the worker ran it."""
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    assert answer.headers["location"] == f"/admin/jobs/{answer.json()['id']}"
    assert await drain(worker) == 1
    job = await client.get(answer.headers["location"], headers=_admin(settings))
    assert job.status_code == 200, job.text
    body: dict[str, Any] = job.json()
    return body


async def test_import_and_export_over_http(
    client: httpx.AsyncClient,
    settings: Settings,
    database: Database,
    db_session: AsyncSession,
) -> None:
    head = "\n".join(GUANGAN_CSV.read_text(encoding="utf-8").splitlines()[:51]) + "\n"
    csv_body = {"Content-Type": "text/csv", **_admin(settings)}
    worker = await worker_in_test_transaction(db_session, database, settings)

    anonymous = await client.post("/admin/imports?mapping=guangan", content=head)
    assert anonymous.status_code == 401
    clerk = await client.post(
        "/admin/imports?mapping=guangan",
        content=head,
        headers={"Content-Type": "text/csv", **_admin(settings, "window_clerk")},
    )
    assert clerk.status_code == 403

    answer = await client.post("/admin/imports?mapping=guangan", content=head, headers=csv_body)
    imported = await _imported(client, worker, answer, settings)
    assert imported["status"] == "succeeded" and imported["total"] == imported["done"] == 50
    assert imported["result"]["created"] == 50 and imported["result"]["drafts_incomplete"] == 50

    # A bad file: the job fails with every bad row, and nothing is written.
    before = await counts(db_session)
    bad = head.replace(",1,511602000000", ",99,511602000000", 1)
    bad = bad.replace("-1-00\n", "-1-01\n")  # new codes, which would be created
    answer = await client.post("/admin/imports?mapping=guangan", content=bad, headers=csv_body)
    refused = await _imported(client, worker, answer, settings)
    assert refused["status"] == "failed" and refused["result"] is None
    assert refused["problem"]["type"] == "urn:wangban:problem:import-rejected"
    assert [(e["row"], e["column"]) for e in refused["errors"]] == [(3, "task_type")]
    assert await counts(db_session) == before

    wrong_mapping = await client.post(
        "/admin/imports?mapping=beijing", content=head, headers=csv_body
    )
    assert wrong_mapping.status_code == 422
    assert wrong_mapping.json()["type"].endswith("invalid-column-mapping")
    unknown_type = await client.post(
        "/admin/imports", content=head, headers={"Content-Type": "text/plain", **_admin(settings)}
    )
    assert unknown_type.status_code == 415

    small = create_service_app(
        load_spec("catalog"),
        settings.model_copy(update={"catalog_import_max_bytes": 1024}),
        background=False,
    )
    async with small.router.lifespan_context(small):
        transport = httpx.ASGITransport(app=small)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as limited:
            too_large = await limited.post(
                "/admin/imports?mapping=guangan", content=head, headers=csv_body
            )
    assert too_large.status_code == 413 and too_large.json()["type"].endswith("import-too-large")
    assert too_large.json()["detail"] == "文件不能超过 1 KB"

    exported = await client.get("/admin/exports?format=csv", headers=_admin(settings))
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert exported.content.startswith("\ufeff".encode())
    answer = await client.post(
        "/admin/imports?format=csv", content=exported.content, headers=csv_body
    )
    again = (await _imported(client, worker, answer, settings))["result"]
    assert again["created"] == again["updated"] == 0

    as_json = await client.get("/admin/exports", headers=_admin(settings))
    assert as_json.headers["content-type"] == "application/json"
    first_code = head.splitlines()[1].split(",")[3]
    assert first_code in {entry["implementing_code"] for entry in as_json.json()}


async def test_multipart_upload_with_a_materials_csv(
    client: httpx.AsyncClient, settings: Settings, database: Database, db_session: AsyncSession
) -> None:
    worker = await worker_in_test_transaction(db_session, database, settings)
    items = GUANGAN_HEADER + "\n区民政局,未分类,临时救助金给付,HTTP-MAT-1,5,511602000000\n"
    materials = "implementing_code,name,copies\nHTTP-MAT-1,居民身份证,1\n"
    response = await client.post(
        "/admin/imports?mapping=guangan",
        files={
            "items": ("items.csv", items.encode(), "text/csv"),
            "materials": ("materials.csv", materials.encode(), "text/csv"),
        },
        headers=_admin(settings),
    )
    assert (await _imported(client, worker, response, settings))["status"] == "succeeded"
    version = (await newest_by_code(db_session, ["HTTP-MAT-1"]))["HTTP-MAT-1"]
    attached = ItemContent.model_validate(version.content).materials
    assert [(m.name, m.copies) for m in attached] == [("居民身份证", 1)]
