"""Searches that found nothing: the help the answer carries (nearest items, the hotline) over
the real Guang'an list, what is recorded (never personal data), and the admins' list of it on
the real database over the catalog's HTTP API."""

from __future__ import annotations

import random
import string
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import search, service, unmatched
from catalog_service.models import UnmatchedQueryHandled, UnmatchedSearch
from catalog_service.repository import ItemFilters
from tests.catalog.support import auth_headers, item_content, publish_guangan
from wangban.app import create_service_app
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings

# --- what may be recorded ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "身份证 110101199003077777",  # 18-digit resident ID
        "11010119900307777X 补办",  # ID ending in X
        "110101900307777",  # first-generation 15-digit ID
        "13800138000",  # mobile
        "138 0013 8000 社保",  # mobile typed with spaces
        "+86-138-0013-8000",
        "0826-2345678",  # landline with area code
        "6222021234567890123",  # bank card
        "查询123456",  # any six digits in a row
        "zhangsan@example.com",
        "公" * 41,  # longer than the cap
        "证",  # one character
        "？！……",  # only punctuation
        "a ",
        "",
    ],
)
def test_personal_looking_short_and_empty_queries_are_never_recorded(query: str) -> None:
    assert unmatched.recordable(query) is None
    recorder = unmatched.UnmatchedRecorder()
    assert recorder.note(query) is False and recorder.pending() == 0


@pytest.mark.parametrize(
    ("query", "recorded"),
    [
        ("  开饭店 ", "开饭店"),
        ("ＧＪＪ  提取", "gjj 提取"),  # full-width to half-width, lowercase, spaces collapsed
        ("2024年 养老认证", "2024年 养老认证"),  # a year is not personal data
        ("ab", "ab"),
        ("公" * 40, "公" * 40),
    ],
)
def test_ordinary_queries_are_recorded_normalised(query: str, recorded: str) -> None:
    assert unmatched.recordable(query) == recorded


def test_the_recorder_counts_per_query_and_day_and_stops_growing_at_its_cap() -> None:
    now = [datetime(2026, 12, 7, 23, 59, tzinfo=UTC)]
    recorder = unmatched.UnmatchedRecorder(max_pending=2, clock=lambda: now[0])
    assert recorder.note("开饭店") and recorder.note("开饭店 ")
    now[0] += timedelta(minutes=2)  # the next (UTC) day: a row of its own
    assert recorder.note("开饭店")
    assert recorder.pending() == 2
    assert not recorder.note("摆摊") and recorder.dropped == 1
    assert recorder.note("开饭店")  # counted on a waiting row: no new entry needed


# --- the real list ----------------------------------------------------------------------------


@pytest.mark.slow  # publishes the whole real list
async def test_a_search_that_finds_nothing_on_the_real_list_suggests_the_nearest_items(
    db_session: AsyncSession, settings: Settings
) -> None:
    await publish_guangan(db_session)
    synonyms = search.SynonymTable(await service.synonym_groups(db_session))
    recorder = unmatched.UnmatchedRecorder()

    async def nearest(query: str, filters: ItemFilters | None = None) -> list[str]:
        filters = filters or ItemFilters()
        found = await service.search_items(db_session, query=query, filters=filters)
        assert found.total == 0, f"{query} found {[hit.name for hit in found.items]}"
        started = time.perf_counter()
        help_ = await unmatched.zero_result_help(
            db_session,
            query=query,
            filters=filters,
            synonyms=synonyms,
            settings=settings,
            recorder=recorder,
        )
        print(f"{query}: {(time.perf_counter() - started) * 1000:.1f} ms")
        assert help_.hotlines == [unmatched.Hotline(name="12345政务服务便民热线", phone="12345")]
        return [hit.name for hit in help_.suggestions]

    # A query that the search itself answers with one word left out (开公司: 公司 items, the
    # search's relaxed pass) never reaches this help.
    company = await service.search_items(db_session, query="开公司", filters=ItemFilters())
    assert "公司设立登记" in [hit.name for hit in company.items[:5]]
    # Some of the words: nothing has 健康证 or 生孩子, and they are not left out.
    assert all("健康" in name for name in await nearest("办健康证"))
    assert all("报销" in name for name in await nearest("生孩子报销"))
    # The same query suggests the same items in the same order.
    assert await nearest("宅基地建房") == await nearest("宅基地建房")
    # One shared character among four is no suggestion; nothing near is an honest answer.
    assert await nearest("我想开个小饭馆") == []
    assert await nearest("xyzzy") == []
    assert recorder.pending() == 5

    # The filters hid an item the catalogue has: it is suggested, and nothing is recorded.
    hidden = await nearest("公司设立登记", ItemFilters(department="区民政局"))
    assert hidden[0] == "公司设立登记"
    assert recorder.pending() == 5


# --- over HTTP: help, counts, the admins' list ------------------------------------------------


async def test_zero_result_searches_are_counted_and_admins_list_and_handle_them(
    settings: Settings, database: Database
) -> None:
    # Letters nobody else's test searches for: the table is shared by the whole run.
    word = "zq" + "".join(random.choices(string.ascii_lowercase, k=10))
    id_query = f"{word} 510105198001010015"
    phone_query = f"{word} 139-0000-1234"
    department = f"未找到测试局-{uuid.uuid4().hex[:6]}"
    app = create_service_app(load_spec("catalog"), settings, background=False)
    admin = auth_headers(settings, "catalog_admin", subject="admin-1", department=department)
    approver = auth_headers(settings, "catalog_approver", subject="approver-1")
    clerk = auth_headers(settings, "window_clerk", subject="clerk-1")
    citizen = auth_headers(settings, kind="citizen", subject="citizen-1")
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
                answers = [(await client.get("/items", params={"q": word})).json()]
                shouted = await client.get("/items", params={"q": f" {word.upper()}"})
                answers.append(shouted.json())
                for query in (id_query, phone_query):
                    answers.append((await client.get("/items", params={"q": query})).json())
                async with database.sessionmaker() as session, session.begin():
                    await unmatched.RECORDER.flush(session)
                # A third search, written by a later flush, adds to the same row.
                answers.append((await client.get("/items", params={"q": word})).json())
                async with database.sessionmaker() as session, session.begin():
                    await unmatched.RECORDER.flush(session)
                body = item_content(department=department, auto_approval=False, rules=[])
                created = await client.post(
                    "/admin/items", json=body.model_dump(mode="json"), headers=admin
                )
                await client.post(
                    f"/admin/item-versions/{created.json()['id']}/publish", headers=admin
                )
                found = await client.get(
                    "/items", params={"q": "高龄津贴", "department": department}
                )

                listed = await client.get("/admin/unmatched-searches", headers=admin)
                read_by_approver = await client.get("/admin/unmatched-searches", headers=approver)
                refused = [
                    await client.get("/admin/unmatched-searches", headers=clerk),
                    await client.get("/admin/unmatched-searches", headers=citizen),
                    await client.get("/admin/unmatched-searches"),
                    await client.post(
                        "/admin/unmatched-searches/handled", json={"query": word}, headers=approver
                    ),
                    await client.post(
                        "/admin/unmatched-searches/handled", json={"query": word}, headers=clerk
                    ),
                ]
                unknown = await client.post(
                    "/admin/unmatched-searches/handled",
                    json={"query": word + "x"},
                    headers=admin,
                )
                handled = await client.post(
                    "/admin/unmatched-searches/handled", json={"query": word}, headers=admin
                )
                after = await client.get(
                    "/admin/unmatched-searches", params={"page_size": 100}, headers=admin
                )
                with_handled = await client.get(
                    "/admin/unmatched-searches",
                    params={"include_handled": "true", "days": 1, "page_size": 100},
                    headers=admin,
                )
                # Searched in vain again after it was handled: back on the list.
                await client.get("/items", params={"q": word})
                async with database.sessionmaker() as session, session.begin():
                    await unmatched.RECORDER.flush(session)
                again = await client.get(
                    "/admin/unmatched-searches", params={"page_size": 100}, headers=admin
                )
        async with database.sessionmaker() as session:
            stored = (await session.execute(select(UnmatchedSearch.query))).scalars().all()
    finally:
        async with database.sessionmaker() as session, session.begin():
            await session.execute(
                delete(UnmatchedSearch).where(UnmatchedSearch.query.like(f"{word}%"))
            )
            await session.execute(
                delete(UnmatchedQueryHandled).where(UnmatchedQueryHandled.query == word)
            )

    for answer in answers:
        assert answer["total"] == 0 and answer["items"] == []
        assert answer["help"]["hotlines"] == [{"name": "12345政务服务便民热线", "phone": "12345"}]
        assert answer["help"]["suggestions"] == []  # nothing shares anything with random letters
    # A search that finds something carries no help.
    assert found.json()["total"] > 0 and found.json()["help"] is None

    assert listed.status_code == 200 and read_by_approver.status_code == 200
    rows = {row["query"]: row for row in listed.json()["items"]}
    assert rows[word]["count"] == 3  # three searches (one in capitals), two writes, one row
    assert rows[word]["handled_at"] is None
    counts = [row["count"] for row in listed.json()["items"]]
    assert counts == sorted(counts, reverse=True)
    assert listed.json()["total"] >= len(listed.json()["items"])
    # Neither the ID number nor the phone number was written, in any form.
    assert [query for query in stored if query.startswith(word)] == [word]

    assert [r.status_code for r in refused] == [403, 403, 401, 403, 403]
    assert unknown.status_code == 404
    assert handled.status_code == 200 and handled.json()["handled_by"] == "admin-1"
    assert word not in {row["query"] for row in after.json()["items"]}
    [row] = [row for row in with_handled.json()["items"] if row["query"] == word]
    assert row["handled_by"] == "admin-1" and row["count"] == 3
    [row] = [row for row in again.json()["items"] if row["query"] == word]
    assert row["count"] == 4 and row["handled_by"] == "admin-1"
