"""The catalogue on the real database: versions, publication rules, 四办 lists, search,
statistics, bundles and the events that carry published versions to other services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import service
from catalog_service.events import outbox
from catalog_service.models import Item, ItemVersion
from catalog_service.repository import ItemFilters
from catalog_service.schemas import BundleContent
from tests.catalog.support import auth_headers, item_content
from wangban.app import create_service_app
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings


async def published(session: AsyncSession, **overrides: Any) -> str:
    draft = await service.create_item_draft(session, content=item_content(**overrides))
    version = await service.publish_version(session, version_id=draft.id)
    return version.item_id


async def outbox_events(session: AsyncSession, event_type: str) -> list[dict[str, Any]]:
    table = outbox.tables.outbox
    rows = await session.execute(
        select(table.c.envelope).where(table.c.event_type == event_type).order_by(table.c.seq)
    )
    return [envelope for (envelope,) in rows]


# --- versions ---------------------------------------------------------------------------------


async def test_published_versions_are_immutable_and_stay_readable(db_session: AsyncSession) -> None:
    first = await service.create_item_draft(db_session, content=item_content(name="高龄津贴申领"))
    await service.publish_version(db_session, version_id=first.id)

    with pytest.raises(service.VersionNotEditable):
        await service.update_draft(
            db_session, version_id=first.id, content=item_content(name="改名")
        )

    draft = await service.start_revision(db_session, item_id=first.item_id)
    assert draft.version == 2 and draft.status == "draft"
    assert (await service.start_revision(db_session, item_id=first.item_id)).id == draft.id
    code = first.content["implementing_code"]
    changed = item_content(implementing_code=code, name="高龄老人津贴申领", committed_days=1)
    await service.update_draft(db_session, version_id=draft.id, content=changed)
    await service.publish_version(db_session, version_id=draft.id)

    current = await service.get_current(db_session, item_id=first.item_id)
    assert current.id == draft.id and current.name == "高龄老人津贴申领"
    old = await service.get_version(db_session, version_id=first.id)
    assert old.name == "高龄津贴申领" and old.content["committed_days"] == 0
    assert old.superseded_at is not None


async def test_incomplete_draft_cannot_be_published(db_session: AsyncSession) -> None:
    bare = item_content(legal_basis=None, legal_days=None, channels=[], form_schema=None, rules=[])
    draft = await service.create_item_draft(db_session, content=bare)
    with pytest.raises(service.NotPublishable) as refused:
        await service.publish_version(db_session, version_id=draft.id)
    fields = {p["field"] for p in refused.value.extra["problems"]}
    assert fields == {"legal_basis", "legal_days", "channels", "form_schema", "rules"}
    assert (await service.get_version(db_session, version_id=draft.id)).status == "draft"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"legal_days": 5, "committed_days": 10}, "committed_days"),
        ({"online_depth": 4, "visits": 1}, "visits"),
        (
            {"rules": [{"name": "x", "expression": "applicant.age >= ", "message": "年龄不符"}]},
            "rules/0/expression",
        ),
        ({"form_schema": {"type": "not-a-type"}}, "form_schema"),
    ],
)
async def test_wrong_content_is_refused_even_as_draft(
    db_session: AsyncSession, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(service.InvalidItem) as refused:
        await service.create_item_draft(db_session, content=item_content(**overrides))
    assert [p["field"] for p in refused.value.extra["problems"]] == [field]


async def test_duplicate_implementing_code_is_refused(db_session: AsyncSession) -> None:
    await service.create_item_draft(db_session, content=item_content(implementing_code="DUP-1"))
    with pytest.raises(service.ItemCodeTaken):
        await service.create_item_draft(db_session, content=item_content(implementing_code="DUP-1"))


# --- 四办 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "lists"),
    [
        ({}, ["马上办", "网上办", "就近办", "一次办"]),
        (
            {"committed_days": 5, "online_depth": 2, "visits": 2, "scope": "district"},
            [],
        ),
        (
            {"committed_days": 3, "online_depth": 3, "visits": 1, "scope": "district"},
            ["一次办"],
        ),
        (
            {
                "committed_days": 3,
                "online_depth": 3,
                "visits": 0,
                "scope": "district",
                "department_level": "镇街",
            },
            ["网上办", "就近办", "一次办"],
        ),
    ],
)
def test_four_lists_are_derived_from_attributes(
    overrides: dict[str, Any], lists: list[str]
) -> None:
    assert service.four_lists(item_content(**overrides)) == lists


# --- events -----------------------------------------------------------------------------------


async def test_publish_and_withdraw_emit_events_with_the_whole_version(
    db_session: AsyncSession,
) -> None:
    item_id = await published(db_session, name="租房提取住房公积金")
    [event] = [
        e
        for e in await outbox_events(db_session, "cn.wangban.catalog.item.published.v1")
        if e["data"]["item_id"] == item_id
    ]
    assert event["subject"] == item_id
    assert event["data"]["content"]["name"] == "租房提取住房公积金"
    assert event["data"]["content"]["rules"][0]["expression"] == "applicant.age >= 80"
    assert event["data"]["lists"] == ["马上办", "网上办", "就近办", "一次办"]

    await service.withdraw_item(db_session, item_id=item_id)
    withdrawn = [
        e
        for e in await outbox_events(db_session, "cn.wangban.catalog.item.withdrawn.v1")
        if e["data"]["item_id"] == item_id
    ]
    assert len(withdrawn) == 1
    with pytest.raises(service.ItemNotFound):
        await service.get_current(db_session, item_id=item_id)


# --- search -----------------------------------------------------------------------------------

NAMES = {
    "rent": "住房公积金提取（租房）",
    "proof": "住房公积金缴存证明打印",
    "idcard": "居民身份证换领",
    "social": "社会保险参保证明打印",
    "business": "个体工商户设立登记",
    "birth": "出生医学证明首次签发",
}


@pytest.fixture
async def search_fixture(db_session: AsyncSession) -> AsyncIterator[dict[str, str]]:
    await service.replace_synonyms(
        db_session, groups=[["身份证", "居民身份证"], ["社保", "社会保险"]]
    )
    ids = {}
    for key, name in NAMES.items():
        overrides: dict[str, Any] = {"name": name, "department": f"部门-{key}"}
        if key == "business":
            overrides.update(serves=["法人"], committed_days=3, auto_approval=False, rules=[])
        if key == "birth":
            overrides["materials"] = [{"name": "住房公积金缴存证明", "source": "upload"}]
        ids[key] = await published(db_session, **overrides)
    yield ids


async def _names(
    session: AsyncSession, fixture: dict[str, str], query: str | None, **filters: Any
) -> list[str]:
    """The names found among the fixture's own items: other modules' committed catalogues (the
    demo one has items of the same names) may share the database."""
    page = await service.search_items(
        session, query=query, filters=ItemFilters(**filters), page_size=100
    )
    ours = set(fixture.values())
    return [v.name for v in page.items if v.item_id in ours]


async def test_search_finds_chinese_fragments_pinyin_and_synonyms(
    db_session: AsyncSession, search_fixture: dict[str, str]
) -> None:
    found = await _names(db_session, search_fixture, "公积金")
    # Names first; the birth item mentions 公积金 only in a material, so it ranks last.
    assert set(found[:2]) == {NAMES["rent"], NAMES["proof"]}
    assert found[-1] == NAMES["birth"]
    assert set(await _names(db_session, search_fixture, "gjj")) >= {NAMES["rent"], NAMES["proof"]}
    assert NAMES["rent"] in await _names(db_session, search_fixture, "gongjijin")
    assert await _names(db_session, search_fixture, "租房") == [NAMES["rent"]]
    assert await _names(db_session, search_fixture, "身份证") == [NAMES["idcard"]]
    assert await _names(db_session, search_fixture, "社保") == [NAMES["social"]]
    assert await _names(db_session, search_fixture, "不存在的事项名称") == []


async def test_search_filters(db_session: AsyncSession, search_fixture: dict[str, str]) -> None:
    assert await _names(db_session, search_fixture, None, serves="法人") == [NAMES["business"]]
    assert NAMES["business"] not in await _names(
        db_session, search_fixture, None, list_name="马上办"
    )
    assert NAMES["business"] not in await _names(
        db_session, search_fixture, None, auto_approval=True
    )
    assert await _names(db_session, search_fixture, "公积金", department="部门-proof") == [
        NAMES["proof"]
    ]


async def test_search_facets_count_the_published_items_only(db_session: AsyncSession) -> None:
    department = f"筛选测试局-{uuid.uuid4().hex[:6]}"
    theme = f"筛选主题-{uuid.uuid4().hex[:6]}"
    await published(db_session, department=department, themes=[theme, "社会保障"])
    withdrawn = await published(db_session, department=department, themes=[theme])
    # A draft of another department is not offered: a filter never finds nothing.
    draft_department = f"草稿局-{uuid.uuid4().hex[:6]}"
    await service.create_item_draft(
        db_session, content=item_content(department=draft_department, themes=[theme])
    )

    facets = await service.search_facets(db_session)
    departments, themes = dict(facets.departments), dict(facets.themes)
    assert departments[department] == 2 and themes[theme] == 2
    assert draft_department not in departments
    counts = [n for _, n in facets.departments]
    assert counts == sorted(counts, reverse=True)

    await service.withdraw_item(db_session, item_id=withdrawn)
    facets = await service.search_facets(db_session)
    assert dict(facets.departments)[department] == 1
    assert dict(facets.themes)[theme] == 1


# --- statistics -------------------------------------------------------------------------------


async def test_statistics_match_figures_computed_by_hand(db_session: AsyncSession) -> None:
    department = f"统计测试局-{uuid.uuid4().hex[:6]}"
    fixtures = [
        # (committed, legal, depth, visits, channels)
        (0, 20, 4, 0, ["网上", "窗口"]),
        (0, 10, 4, 0, ["网上"]),
        (1, 20, 3, 1, ["网上"]),
        (5, 20, 2, 2, ["窗口"]),
    ]
    for committed, legal, depth, visits, channels in fixtures:
        form = None if depth < 3 else item_content().form_schema
        await published(
            db_session,
            department=department,
            committed_days=committed,
            legal_days=legal,
            online_depth=depth,
            visits=visits,
            channels=channels,
            form_schema=form,
            scope="district",
        )
    stats = await service.statistics(db_session, department=department)
    assert stats.items == 4
    assert stats.by_type == {"行政给付": 4}
    assert stats.on_the_spot_share == 0.5  # 2 of 4 即办
    assert stats.within_one_day_share == 0.75  # 3 of 4 within 1 day
    # (1 + 1 + 19/20 + 15/20) / 4
    assert stats.average_compression == round((1 + 1 + 0.95 + 0.75) / 4, 4)
    assert stats.lists == {"马上办": 2, "网上办": 2, "就近办": 0, "一次办": 3}
    assert stats.full_online_rate == round(2 / 3, 4)  # depth IV among the 3 offered online


# --- bundles ----------------------------------------------------------------------------------


async def test_bundle_binds_its_members_current_versions(db_session: AsyncSession) -> None:
    codes = [f"B-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for code in codes:
        await published(db_session, implementing_code=code)
    content = BundleContent.model_validate(
        {
            "code": f"BUNDLE-{uuid.uuid4().hex[:6]}",
            "name": "退休一件事",
            "members": [
                {"implementing_code": codes[0], "field_map": {"account": "bank_account"}},
                {"implementing_code": codes[1], "field_map": {"account": "bank_account"}},
            ],
            "form_schema": {
                "type": "object",
                "properties": {"account": {"type": "string", "title": "收款账号"}},
            },
        }
    )
    draft = await service.create_bundle_draft(db_session, content=content)
    # A draft is the department's work in progress: the public read knows no such bundle.
    with pytest.raises(service.BundleNotFound):
        await service.get_public_bundle_version(db_session, version_id=draft.id)
    version = await service.publish_bundle(db_session, version_id=draft.id)
    assert len(version.member_version_ids) == 2
    public = await service.get_public_bundle_version(db_session, version_id=version.id)
    assert public.id == version.id
    [event] = [
        e
        for e in await outbox_events(db_session, "cn.wangban.catalog.bundle.published.v1")
        if e["data"]["version_id"] == version.id
    ]
    assert event["data"]["member_version_ids"] == version.member_version_ids

    broken = content.model_copy(
        update={
            "code": f"BUNDLE-{uuid.uuid4().hex[:6]}",
            "members": [
                content.members[0],
                content.members[1].model_copy(update={"implementing_code": "NOT-PUBLISHED"}),
            ],
        }
    )
    draft = await service.create_bundle_draft(db_session, content=broken)
    with pytest.raises(service.NotPublishable, match="未发布"):
        await service.publish_bundle(db_session, version_id=draft.id)


# --- HTTP -------------------------------------------------------------------------------------


async def test_admin_api_requires_the_catalog_admin_role(
    settings: Settings, database: Database
) -> None:
    app = create_service_app(load_spec("catalog"), settings, background=False)
    department = f"接口测试局-{uuid.uuid4().hex[:6]}"
    body = item_content(department=department).model_dump(mode="json")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            anonymous = await client.post("/admin/items", json=body)
            clerk = await client.post(
                "/admin/items", json=body, headers=auth_headers(settings, "window_clerk")
            )
            admin = auth_headers(settings, "catalog_admin", department=department)
            bad = await client.post(
                "/admin/items",
                json={**body, "committed_days": 30, "legal_days": 20},
                headers=admin,
            )
            created = await client.post("/admin/items", json=body, headers=admin)
            version_id = created.json()["id"]
            # A new item with 秒批 rules takes a second person of its department.
            alone = await client.post(f"/admin/item-versions/{version_id}/publish", headers=admin)
            await client.post(f"/admin/item-versions/{version_id}/submit", headers=admin)
            approver = auth_headers(
                settings, "catalog_approver", department=department, subject="staff-2"
            )
            published_ = await client.post(
                f"/admin/item-versions/{version_id}/approve", headers=approver
            )
            by_id = await client.get(f"/item-versions/{version_id}")
            listed = await client.get(
                "/items", params={"q": "gljt", "department": department, "list": "马上办"}
            )
            missing = await client.get("/items/not-a-uuid")
            by_code = await client.get(f"/items/{body['implementing_code']}")
    assert anonymous.status_code == 401 and clerk.status_code == 403
    assert bad.status_code == 422 and bad.json()["type"].endswith("invalid-item")
    assert "承诺办结时限不能超过法定办结时限" in bad.json()["detail"]
    assert created.status_code == 201 and created.json()["status"] == "draft"
    assert alone.status_code == 409 and alone.json()["type"].endswith("review-required")
    assert published_.status_code == 200 and published_.json()["status"] == "published"
    assert by_id.json()["content"]["implementing_code"] == body["implementing_code"]
    [hit] = listed.json()["items"]
    assert hit["version_id"] == version_id and hit["implementing_code"] == body["implementing_code"]
    assert listed.json()["total"] == 1
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert by_code.status_code == 200 and by_code.json()["id"] == version_id


async def test_synonym_cache_rereads_the_table_only_after_its_ttl(
    db_session: AsyncSession,
) -> None:
    now = [100.0]
    cache = service.SynonymCache(ttl_s=5.0, clock=lambda: now[0])
    await service.replace_synonyms(db_session, groups=[["长寿金", "高龄津贴"]])
    assert "高龄津贴" in (await cache.table(db_session)).expand("长寿金")
    await service.replace_synonyms(db_session, groups=[["敬老金", "高龄津贴"]])
    now[0] += 4.9  # within the TTL: the cached table, no query
    assert "高龄津贴" in (await cache.table(db_session)).expand("长寿金")
    now[0] += 0.2
    assert (await cache.table(db_session)).expand("长寿金") == {"长寿金"}
    assert "高龄津贴" in (await cache.table(db_session)).expand("敬老金")
    await service.replace_synonyms(db_session, groups=[])
    cache.invalidate()  # what the admin route does once its edit has committed
    assert (await cache.table(db_session)).expand("敬老金") == {"敬老金"}


async def test_an_admin_synonym_edit_applies_to_the_next_search_over_http(
    settings: Settings, database: Database
) -> None:
    app = create_service_app(load_spec("catalog"), settings, background=False)
    department = f"同义词测试局-{uuid.uuid4().hex[:6]}"
    # Synonyms serve every department: the platform catalogue role keeps them.
    admin = auth_headers(settings, "catalog_admin", "platform_catalog_admin")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            # No 秒批 rules: an item one person may publish.
            body = item_content(department=department, auto_approval=False, rules=[]).model_dump(
                mode="json"
            )
            created = await client.post("/admin/items", json=body, headers=admin)
            await client.post(f"/admin/item-versions/{created.json()['id']}/publish", headers=admin)
            async with database.sessionmaker() as session:
                previous = await service.repository.synonym_groups(session)
            query = {"q": "长寿金", "department": department}
            # The first search fills the app's synonym cache with a table lacking 长寿金.
            assert (await client.get("/items", params=query)).json()["total"] == 0
            edited = await client.put(
                "/admin/synonyms",
                json={"groups": [*previous, ["长寿金", "高龄津贴"]]},
                headers=admin,
            )
            try:
                assert edited.status_code == 200
                found = (await client.get("/items", params=query)).json()
            finally:
                await client.put("/admin/synonyms", json={"groups": previous}, headers=admin)
    assert [hit["name"] for hit in found["items"]] == ["高龄津贴申领"]


async def test_demo_catalogue_seeds_once_and_publishes_everything(
    db_session: AsyncSession,
) -> None:
    from catalog_service.seed import demo_bundles, demo_items, seed_catalogue

    await seed_catalogue(db_session)
    await seed_catalogue(db_session)  # idempotent: no second version, nothing overwritten
    codes = [item.implementing_code for item in demo_items()]
    rows = await db_session.execute(
        select(ItemVersion.status, ItemVersion.version)
        .join(Item, Item.id == ItemVersion.item_id)
        .where(Item.implementing_code.in_(codes))
    )
    assert sorted(set(rows.all())) == [("published", 1)]
    assert len(codes) >= 60
    bundles = {b.name for b in await service.list_bundles(db_session)}
    assert {b.name for b in demo_bundles()} <= bundles
    stats = await service.statistics(db_session, department="东莞市民政局")
    assert stats.items >= 1 and stats.auto_approval >= 1
    found = await service.search_items(db_session, query="高龄津贴", filters=ItemFilters())
    assert any("高龄" in v.name and "津贴" in v.name for v in found.items)
