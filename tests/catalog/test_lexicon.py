"""The citizen lexicon: a versioned production file whose catalogue side names real items, loaded
by ``wangban migrate`` as the shipped layer of the synonym table, next to the admins' groups."""

from __future__ import annotations

import csv
import dataclasses
import unicodedata

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import repository, search, service
from catalog_service.app import SPEC
from catalog_service.lexicon import Lexicon, LexiconError, parse_lexicon, shipped_lexicon
from catalog_service.models import SynonymGroup
from catalog_service.seed import demo_items
from tests.catalog.support import GUANGAN_CSV, auth_headers
from wangban.app import create_service_app
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings

THEMES = {
    "household", "public_order", "civil_affairs", "disability", "social_insurance",
    "employment", "work_injury", "medical_insurance", "housing_fund", "housing",
    "real_estate", "transport", "catering", "business", "tax", "education", "health",
    "agriculture", "forestry", "water", "environment", "culture", "veterans", "justice",
    "safety",
}  # fmt: skip


def _key(text: str) -> str:
    """Names and terms compared as search compares them: NFKC, lowercase, letters and digits."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in text if c.isalnum())


def catalogue_names() -> list[str]:
    with GUANGAN_CSV.open(encoding="utf-8-sig", newline="") as handle:
        names = [row["name"] for row in csv.DictReader(handle)]
    return names + [item.name for item in demo_items()]


def test_the_lexicon_covers_every_theme_with_hundreds_of_groups() -> None:
    shipped = shipped_lexicon()
    assert shipped.version >= 1
    assert len(shipped.groups) >= 300
    by_theme = shipped.by_theme()
    assert set(by_theme) == THEMES
    assert all(len(groups) >= 5 for groups in by_theme.values()), {
        theme: len(groups) for theme, groups in by_theme.items()
    }
    assert {group.source for group in shipped.groups} <= set(shipped.sources)


def test_every_catalogue_term_occurs_in_an_item_name() -> None:
    """The catalogue side is the catalogue's own words: each term is part of the name of an
    item of the real Guang'an list or of the demo catalogue, so no group points nowhere."""
    names = [_key(name) for name in catalogue_names()]
    unmatched = [
        (group.key, term)
        for group in shipped_lexicon().groups
        for term in group.terms
        if not any(_key(term) in name for name in names)
    ]
    assert not unmatched, unmatched


def test_groups_stay_apart_in_the_synonym_table() -> None:
    """Groups sharing a phrase merge (the table is transitive); the shipped ones must not snowball
    into one blob where 开饭店 also means 开公司."""
    table = search.SynonymTable(group.phrases for group in shipped_lexicon().groups)
    largest = max(
        (table.expand(phrase) for group in shipped_lexicon().groups for phrase in group.phrases),
        key=len,
    )
    assert len(largest) <= 30, sorted(largest)
    assert "公司设立登记" not in table.expand("开饭店")


def test_the_lexicon_covers_the_former_demo_synonyms() -> None:
    table = search.SynonymTable(group.phrases for group in shipped_lexicon().groups)
    for phrase, synonym in [
        ("身份证", "居民身份证"),
        ("社保", "社会保险"),
        ("医保", "医疗保险"),
        ("公积金", "住房公积金"),
        ("户籍", "户口"),
        ("执照", "营业执照"),
        ("退休", "养老"),
    ]:
        assert synonym in table.expand(phrase), phrase


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"version": 0, "sources": {}, "themes": {}}, "version"),
        (
            {"version": 1, "sources": {"a": ""}, "themes": {"t": {"groups": [{"say": ["x"]}]}}},
            "terms",
        ),
        (
            {
                "version": 1,
                "sources": {"a": ""},
                "themes": {"t": {"groups": [{"say": ["x"], "terms": ["y"], "source": "b"}]}},
            },
            "source",
        ),
        (
            {
                "version": 1,
                "sources": {"a": ""},
                "themes": {
                    "t": {
                        "groups": [
                            {"say": ["x"], "terms": ["y"], "source": "a"},
                            {"say": ["x"], "terms": ["z"], "source": "a"},
                        ]
                    }
                },
            },
            "second group",
        ),
    ],
)
def test_a_malformed_lexicon_is_refused_with_the_place_named(raw: object, problem: str) -> None:
    with pytest.raises(LexiconError, match=problem):
        parse_lexicon(raw)


async def test_wangban_migrate_loads_the_lexicon(settings: Settings, database: Database) -> None:
    """`wangban migrate` (what the production migrate Job runs) brings the shipped layer to this
    release's lexicon, and running it again writes nothing."""
    from wangban.cli import migrate_services

    assert service.load_shipped_lexicon in SPEC.reference_data
    try:
        await migrate_services(settings, ["catalog"])
        async with database.sessionmaker() as session:
            first = await service.lexicon_state(session)
            ids = await session.scalars(select(SynonymGroup.id).order_by(SynonymGroup.id))
            before = list(ids)
        await migrate_services(settings, ["catalog"])
        async with database.sessionmaker() as session:
            again = list(await session.scalars(select(SynonymGroup.id).order_by(SynonymGroup.id)))
        assert (first.version, first.groups) == (
            shipped_lexicon().version,
            len(shipped_lexicon().groups),
        )
        assert again == before
    finally:
        # The other tests of this database search without the shipped layer.
        async with database.sessionmaker() as session, session.begin():
            await session.execute(delete(SynonymGroup).where(SynonymGroup.origin == "shipped"))


def _next_version(shipped: Lexicon, *, drop: int) -> Lexicon:
    return dataclasses.replace(shipped, version=shipped.version + 1, groups=shipped.groups[drop:])


async def test_the_shipped_layer_loads_once_per_version_and_admin_groups_stay(
    db_session: AsyncSession,
) -> None:
    shipped = shipped_lexicon()
    await service.replace_synonyms(db_session, groups=[["长寿金", "高龄津贴"]])

    assert await service.load_shipped_lexicon(db_session) is True
    assert await service.load_shipped_lexicon(db_session) is False  # same version: nothing
    state = await service.lexicon_state(db_session)
    assert (state.version, state.groups, state.disabled) == (
        shipped.version,
        len(shipped.groups),
        [],
    )
    effective = await repository.synonym_groups(db_session)
    assert ["长寿金", "高龄津贴"] in effective
    assert shipped.groups[0].phrases in effective
    # The admin API's view is the admins' own layer only.
    assert await service.synonym_groups(db_session) == [["长寿金", "高龄津贴"]]

    # An admin switches a shipped group off; an admin edit of their own groups keeps the shipped
    # layer and (when `disabled` is not given) the disabled keys.
    first = shipped.groups[0]
    await service.replace_synonyms(
        db_session, groups=[["长寿金", "高龄津贴"]], disabled=[first.key]
    )
    await service.replace_synonyms(db_session, groups=[["敬老金", "高龄津贴"]])
    effective = await repository.synonym_groups(db_session)
    assert first.phrases not in effective
    assert shipped.groups[1].phrases in effective
    assert ["敬老金", "高龄津贴"] in effective and ["长寿金", "高龄津贴"] not in effective

    # A newer release replaces the shipped layer whole; the admin's groups and choices stay.
    newer = _next_version(shipped, drop=2)
    assert await service.load_shipped_lexicon(db_session, lexicon=newer) is True
    state = await service.lexicon_state(db_session)
    assert (state.version, state.groups, state.disabled) == (
        newer.version,
        len(shipped.groups) - 2,
        [first.key],
    )
    effective = await repository.synonym_groups(db_session)
    assert shipped.groups[1].phrases not in effective and shipped.groups[2].phrases in effective
    assert ["敬老金", "高龄津贴"] in effective
    # Rolling back to the older release leaves the newer lexicon in place.
    assert await service.load_shipped_lexicon(db_session) is False
    assert (await service.lexicon_state(db_session)).version == newer.version


async def test_the_lexicon_reaches_search(db_session: AsyncSession) -> None:
    from tests.catalog.support import item_content

    department = "词表测试局"
    content = item_content(
        name="食品行业从业人员预防性体检合格证办理", department=department, keywords=[]
    )
    draft = await service.create_item_draft(db_session, content=content)
    await service.publish_version(db_session, version_id=draft.id)
    filters = repository.ItemFilters(department=department)
    before = await service.search_items(db_session, query="办健康证", filters=filters)
    assert before.total == 0
    await service.load_shipped_lexicon(db_session)
    after = await service.search_items(db_session, query="办健康证", filters=filters)
    assert [hit.name for hit in after.items] == ["食品行业从业人员预防性体检合格证办理"]


async def test_admins_read_and_switch_off_shipped_groups_over_http(
    settings: Settings, database: Database
) -> None:
    """GET answers the admins' groups, the disabled keys and the shipped layer's version; a PUT
    without ``disabled`` (an older client writing back what it read) keeps the disabled keys."""
    app = create_service_app(load_spec("catalog"), settings, background=False)
    admin = auth_headers(settings, "catalog_admin", "platform_catalog_admin")
    key = shipped_lexicon().groups[0].key
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            before = (await client.get("/admin/synonyms", headers=admin)).json()
            assert set(before) == {"groups", "disabled", "lexicon"}
            try:
                put = await client.put(
                    "/admin/synonyms",
                    json={"groups": [*before["groups"], ["敬老金", "高龄津贴"]], "disabled": [key]},
                    headers=admin,
                )
                assert put.status_code == 200, put.text
                await client.put(
                    "/admin/synonyms",
                    json={"groups": [*before["groups"], ["敬老金", "高龄津贴"]]},
                    headers=admin,
                )
                read = (await client.get("/admin/synonyms", headers=admin)).json()
                assert ["敬老金", "高龄津贴"] in read["groups"]
                assert read["disabled"] == [key]
            finally:
                await client.put("/admin/synonyms", json=before, headers=admin)
