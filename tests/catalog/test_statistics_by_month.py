"""The catalogue's figures per department and month (``GET /statistics/monthly``: the catalogue
as it stood at each month's end) and their CSV table, over HTTP, on items this module publishes
and dates: the expected figures are computed here from the same versions, by the definitions in
:mod:`catalog_service.statistics`.

Department D (this module's own), October–December 2018 (China time):

  version  published  superseded/withdrawn  承诺/法定  channels    depth  秒批
  i1 v1    10-15      –                     0/20       网上 窗口    4      yes
  i2 v1    10-20      superseded 11-10      10/20      窗口         2      no
  i2 v2    11-10      –                     5/20       掌上         3      no
  i3 v1    11-05      withdrawn 12-02       3/30       窗口         1      no
  i4       a draft, never published

November's snapshot is 1 Dec 00:00 China time (30 Nov 16:00 UTC); i3 was withdrawn on 2 Dec,
so it counts in November and not in December.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import service
from catalog_service.models import ItemVersion
from tests.catalog.support import item_content
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.db import _read_only
from wangban.services import load_spec
from wangban.settings import Settings

CST = timezone(timedelta(hours=8), "CST")
MONTHS = ["2018-10", "2018-11", "2018-12"]
MONTH_ENDS = {
    "2018-10": datetime(2018, 11, 1, tzinfo=CST),
    "2018-11": datetime(2018, 12, 1, tzinfo=CST),
    "2018-12": datetime(2019, 1, 1, tzinfo=CST),
}
PERIOD = {"start_month": "2018-10", "end_month": "2018-12"}


@dataclass(frozen=True)
class Version:
    published: datetime
    ended: datetime | None  # superseded or withdrawn
    committed: int
    legal: int
    channels: tuple[str, ...]
    depth: int
    auto: bool


def day(month: int, date: int) -> datetime:
    return datetime(2018, month, date, 10, tzinfo=CST)


VERSIONS = {
    "i1": [Version(day(10, 15), None, 0, 20, ("网上", "窗口"), 4, True)],
    "i2": [
        Version(day(10, 20), day(11, 10), 10, 20, ("窗口",), 2, False),
        Version(day(11, 10), None, 5, 20, ("掌上",), 3, False),
    ],
    "i3": [Version(day(11, 5), day(12, 2), 3, 30, ("窗口",), 1, False)],
}


def content(department: str, v: Version) -> dict[str, Any]:
    return {
        "department": department,
        "committed_days": v.committed,
        "legal_days": v.legal,
        "channels": list(v.channels),
        "online_depth": v.depth,
        "visits": 0 if v.depth == 4 else 1,
        "auto_approval": v.auto,
        "rules": [] if not v.auto else item_content().rules,
    }


@pytest.fixture
async def department(db_session: AsyncSession) -> str:
    department = f"统计测试局-{uuid.uuid4().hex[:6]}"
    s = db_session
    for key, versions in VERSIONS.items():
        code = f"STATS-{key}-{uuid.uuid4().hex[:8]}"
        first = versions[0]
        draft = await service.create_item_draft(
            s, content=item_content(implementing_code=code, **content(department, first))
        )
        await service.publish_version(s, version_id=draft.id)
        ids = [draft.id]
        for later in versions[1:]:
            revision = await service.start_revision(s, item_id=draft.item_id)
            await service.update_draft(
                s,
                version_id=revision.id,
                content=item_content(implementing_code=code, **content(department, later)),
            )
            await service.publish_version(s, version_id=revision.id)
            ids.append(revision.id)
        if key == "i3":
            await service.withdraw_item(s, item_id=draft.item_id)
        # The dates of the table above, in place of today's.
        for version_id, v, following in zip(ids, versions, [*versions[1:], None], strict=True):
            ended = {"superseded_at": v.ended} if following else {"withdrawn_at": v.ended}
            await s.execute(
                update(ItemVersion)
                .where(ItemVersion.id == version_id)
                .values(published_at=v.published, **ended)
            )
    await service.create_item_draft(s, content=item_content(department=department))  # i4
    await s.flush()
    return department


def expected() -> dict[str, dict[str, list[int]]]:
    figures: dict[str, dict[str, list[int]]] = {}
    for month, end in MONTH_ENDS.items():
        current = [
            v
            for versions in VERSIONS.values()
            for v in versions
            if v.published <= end and (v.ended is None or v.ended > end)
        ]
        online = [v for v in current if {"网上", "掌上"} & set(v.channels)]
        timed = [v for v in current if v.legal > 0]
        figures[month] = {
            "items": [len(current)],
            "immediate": [sum(v.committed == 0 for v in current), len(current)],
            "online": [len(online), len(current)],
            "fully_online": [sum(v.depth == 4 for v in online), len(online)],
            "auto_approval": [sum(v.auto for v in current), len(current)],
            "compression": [
                sum(v.legal - v.committed for v in timed),
                sum(v.legal for v in timed),
            ],
        }
    return figures


def figures_of(body: dict[str, Any], department: str) -> dict[str, dict[str, list[int]]]:
    found: dict[str, dict[str, list[int]]] = {}
    for row in body["rows"]:
        assert row["department"] == department
        figures: dict[str, list[int]] = {"items": [row["items"]]}
        for key, value in row.items():
            if isinstance(value, dict):
                numerator, denominator = value["numerator"], value["denominator"]
                assert value["value"] == (numerator / denominator if denominator else None)
                figures[key] = [numerator, denominator]
        found[row["month"]] = figures
    return found


@pytest.fixture
async def catalog(settings: Settings, db_session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_service_app(load_spec("catalog"), settings, background=False)

    async def test_session() -> AsyncIterator[AsyncSession]:
        yield db_session

    app.dependency_overrides[_read_only] = test_session
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as http:
            yield http


def staff(settings: Settings, role: str, department: str | None = None) -> dict[str, str]:
    identity = Identity(
        subject=f"{role}-1",
        kind="staff",
        roles=frozenset({role}),
        department=department,
        region="441900" if department else None,
        assurance=AssuranceLevel.REAL_NAME,
    )
    token = InternalTokens.from_settings(settings).issue(identity, issuer="gateway")
    return {"Authorization": f"Bearer {token}"}


async def test_each_months_figures_are_the_catalogue_at_its_end(
    catalog: httpx.AsyncClient, department: str, settings: Settings
) -> None:
    answer = await catalog.get(
        "/statistics/monthly",
        params={**PERIOD, "department": department},
        headers=staff(settings, "auditor"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["months"] == MONTHS and body["department"] == department
    assert figures_of(body, department) == expected()
    # Spelled out once: November holds i1, i2 v2 and i3 (withdrawn only in December).
    november = figures_of(body, department)["2018-11"]
    assert november["items"] == [3] and november["online"] == [2, 3]
    assert november["fully_online"] == [1, 2] and november["compression"] == [20 + 15 + 27, 70]

    # A department's staff see their own department, whatever they ask.
    author = staff(settings, "catalog_admin", department=department)
    own = await catalog.get(
        "/statistics/monthly", params={**PERIOD, "department": "东莞市民政局"}, headers=author
    )
    assert own.json()["department"] == department
    assert figures_of(own.json(), department) == expected()
    other = staff(settings, "reviewer", department=f"{department}-别的")
    assert (await catalog.get("/statistics/monthly", params=PERIOD, headers=other)).json()[
        "rows"
    ] == []
    citizen = await catalog.get("/statistics/monthly", params=PERIOD)
    assert citizen.status_code == 401


async def test_months_not_begun_have_no_figures_and_a_bad_period_is_refused(
    catalog: httpx.AsyncClient, settings: Settings
) -> None:
    auditor = staff(settings, "auditor")
    this_year = datetime.now(CST).year
    future = await catalog.get(
        "/statistics/monthly",
        params={"start_month": f"{this_year + 1}-01", "end_month": f"{this_year + 1}-03"},
        headers=auditor,
    )
    assert future.status_code == 200 and future.json()["months"] == []
    backwards = await catalog.get(
        "/statistics/monthly",
        params={"start_month": "2018-12", "end_month": "2018-10"},
        headers=auditor,
    )
    assert backwards.status_code == 422
    assert backwards.json()["type"] == "urn:wangban:problem:invalid-statistics-period"


async def test_the_csv_table_holds_the_same_figures(
    catalog: httpx.AsyncClient, department: str, settings: Settings
) -> None:
    exported = await catalog.get(
        "/statistics/monthly.csv",
        params={**PERIOD, "department": department},
        headers=staff(settings, "auditor"),
    )
    assert exported.status_code == 200, exported.text
    assert exported.content.startswith(b"\xef\xbb\xbf")
    assert exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [(r["部门"], r["月份"]) for r in table] == [(department, m) for m in MONTHS]
    names = {
        "immediate": "即办率",
        "online": "网办率",
        "fully_online": "全程网办率",
        "auto_approval": "秒批率",
        "compression": "时限压缩率",
    }
    wanted = expected()
    for line in table:
        figures = wanted[line["月份"]]
        assert [int(line["事项数"])] == figures["items"]
        for key, name in names.items():
            numerator, denominator = figures[key]
            assert [int(line[f"{name}分子"]), int(line[f"{name}分母"])] == [numerator, denominator]
            value = f"{100 * numerator / denominator:.2f}%" if denominator else ""
            assert line[name] == value
