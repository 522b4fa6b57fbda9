"""三率一数 and the other figures per department and month (``GET /staff/statistics/monthly``)
and their CSV table, over HTTP, on applications this module builds: the expected figures are
computed here, in Python, from the same rows, by the definitions in
:mod:`intake_service.statistics`.

The period is November–December 2018 (China time), which no other test uses; the departments
are this module's own. Boundaries: 30 Nov 23:30 China time (15:30 UTC) is November; 31 Oct
23:59 and 1 Jan 00:00 are outside.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.intake import factories
from tests.intake.factories import CST, at, unique
from tests.intake.support import Intake
from wangban.db import _read_only

ONLINE = ("mini_program", "web")
DONE = ("completed", "delivered")


@dataclass(frozen=True)
class Row:
    """One application as this test files it (and reasons about it)."""

    department: str
    submitted: datetime
    channel: str = "mini_program"
    status: str = "completed"
    visits: int | None = 0
    committed: int | None = 5
    auto: bool = False
    decided_by: str | None = None
    completed: datetime | None = None
    due: date | None = None
    score: int | None = None


@dataclass(frozen=True)
class Departments:
    d1: str
    d2: str


@pytest.fixture
async def departments(intake: Intake, db_session: AsyncSession) -> Departments:
    """The rows of :func:`rows`, in a transaction rolled back after the test, which the intake
    app's reads share (nothing is left for other tests to find)."""

    async def shared() -> AsyncIterator[AsyncSession]:
        yield db_session

    intake.app.dependency_overrides[_read_only] = shared
    d = Departments(d1=unique("民政局"), d2=unique("人社局"))
    for row in rows(d):
        application = await factories.application(
            db_session,
            department=row.department,
            channel=row.channel,
            status=row.status,
            visits=row.visits,
            committed_days=row.committed,
            auto_approval=row.auto,
            decided_by=row.decided_by,
            submitted_at=row.submitted,
            accepted_at=row.submitted if row.status != "submitted" else None,
            completed_at=row.completed,
            due_date=row.due,
        )
        if row.score is not None:
            await factories.rating(db_session, application=application, score=row.score)
    return d


def rows(d: Departments) -> list[Row]:
    return [
        # 民政局, November: a 秒批, a person's decision on time, a late one, a window filing still
        # open with its visit count unknown, and the last minute of the month.
        Row(
            d.d1,
            at(2018, 11, 5, 9),
            committed=0,
            auto=True,
            decided_by="auto",
            completed=at(2018, 11, 5, 9, 1),
            due=date(2018, 11, 5),
            score=5,
        ),
        Row(
            d.d1,
            at(2018, 11, 6, 10),
            channel="web",
            auto=True,
            decided_by="reviewer-1",
            completed=at(2018, 11, 12, 16),
            due=date(2018, 11, 13),
            score=4,
        ),
        Row(
            d.d1,
            at(2018, 11, 7, 9),
            channel="window",
            visits=1,
            committed=3,
            completed=at(2018, 11, 14, 9),
            due=date(2018, 11, 12),
            score=2,
        ),
        Row(d.d1, at(2018, 11, 20, 9), channel="window", status="submitted", visits=None),
        Row(
            d.d1,
            at(2018, 11, 30, 23, 30),
            channel="kiosk",
            status="delivered",
            visits=2,
            committed=0,
            completed=at(2018, 12, 3, 9),
            due=date(2018, 11, 30),
            score=3,
        ),
        # 民政局, December: completed after the period's end still counts (by submission).
        Row(
            d.d1,
            at(2018, 12, 3, 9),
            committed=0,
            auto=True,
            decided_by="auto",
            completed=at(2019, 1, 2, 9),
            due=date(2018, 12, 3),
        ),
        Row(d.d1, at(2018, 12, 28, 9), status="under_review", committed=None, visits=1),
        # 人社局, December only.
        Row(
            d.d2,
            at(2018, 12, 10, 9),
            channel="window",
            visits=1,
            completed=at(2018, 12, 11, 9),
            due=date(2018, 12, 17),
            score=5,
        ),
        # Outside the period: not counted anywhere.
        Row(d.d1, at(2018, 10, 31, 23, 59), committed=0, score=1),
        Row(d.d1, at(2019, 1, 1, 0, 0), committed=0, score=1),
    ]


def month_of(moment: datetime) -> str:
    return f"{moment.astimezone(CST):%Y-%m}"


def expected(d: Departments, department: str) -> dict[str, dict[str, Any]]:
    """The figures of ``department`` by month, computed from :func:`rows`."""
    by_month: dict[str, list[Row]] = {}
    for row in rows(d):
        if row.department == department and month_of(row.submitted) in ("2018-11", "2018-12"):
            by_month.setdefault(month_of(row.submitted), []).append(row)
    figures: dict[str, dict[str, Any]] = {}
    for month, group in by_month.items():
        n = len(group)
        done = [r for r in group if r.status in DONE and r.completed is not None]
        with_due = [r for r in done if r.due is not None]
        known_visits = [r.visits for r in group if r.visits is not None]
        scores = [r.score for r in group if r.score is not None]
        figures[month] = {
            "applications": n,
            "immediate": [sum(r.committed == 0 for r in group), n],
            "online": [sum(r.channel in ONLINE for r in group), n],
            "online_completed": [
                sum(r.channel in ONLINE and r.visits == 0 for r in done),
                n,
            ],
            "on_time": [
                sum(
                    r.completed is not None and r.completed.astimezone(CST).date() <= r.due
                    for r in with_due
                    if r.due is not None
                ),
                len(with_due),
            ],
            "good_rating": [sum(s >= 4 for s in scores), len(scores)],
            "visits": [sum(known_visits), len(known_visits)],
            "instant_approval": [sum(r.auto and r.decided_by == "auto" for r in group), n],
        }
    return figures


def figures_of(body: dict[str, Any], department: str) -> dict[str, dict[str, Any]]:
    """The answer's rows of ``department`` in the shape of :func:`expected` (values checked)."""
    found: dict[str, dict[str, Any]] = {}
    for row in body["rows"]:
        if row["department"] != department:
            continue
        figures: dict[str, Any] = {"applications": row["applications"]}
        for key, value in row.items():
            if isinstance(value, dict):
                numerator, denominator = value["numerator"], value["denominator"]
                assert value["value"] == (numerator / denominator if denominator else None)
                figures[key] = [numerator, denominator]
        found[row["month"]] = figures
    return found


PERIOD = {"start_month": "2018-11", "end_month": "2018-12"}


async def test_the_figures_by_department_and_month_are_those_the_rows_imply(
    intake: Intake, departments: Departments
) -> None:
    d = departments
    auditor = intake.staff("auditor-1", "auditor")
    answer = await intake.client.get(
        "/staff/statistics/monthly", params={**PERIOD, "department": d.d1}, headers=auditor
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["months"] == ["2018-11", "2018-12"] and body["department"] == d.d1
    assert {r["department"] for r in body["rows"]} == {d.d1}
    assert figures_of(body, d.d1) == expected(d, d.d1)
    # Spelled out once, so that one mistake in both the service and expected() shows.
    november = figures_of(body, d.d1)["2018-11"]
    assert november["applications"] == 5
    assert november["immediate"] == [2, 5] and november["instant_approval"] == [1, 5]
    assert november["on_time"] == [2, 4] and november["good_rating"] == [2, 4]
    assert november["visits"] == [3, 4] and november["online_completed"] == [2, 5]

    # All departments for an auditor who names none: both, each as it is.
    everything = await intake.client.get(
        "/staff/statistics/monthly", params=PERIOD, headers=auditor
    )
    assert everything.json()["department"] is None
    assert figures_of(everything.json(), d.d2) == expected(d, d.d2)


async def test_a_department_sees_its_own_figures_in_its_own_region(
    intake: Intake, departments: Departments
) -> None:
    d = departments
    reviewer = intake.staff("reviewer-2", "reviewer", department=d.d2, region="441900")
    answer = await intake.client.get(
        "/staff/statistics/monthly", params={**PERIOD, "department": d.d1}, headers=reviewer
    )
    body = answer.json()
    assert answer.status_code == 200 and body["department"] == d.d2
    assert {r["department"] for r in body["rows"]} == {d.d2}
    assert figures_of(body, d.d2) == expected(d, d.d2)

    elsewhere = intake.staff("reviewer-3", "reviewer", department=d.d2, region="440100")
    answer = await intake.client.get("/staff/statistics/monthly", params=PERIOD, headers=elsewhere)
    assert answer.json()["rows"] == []

    clerk = intake.staff("clerk-1", "window_clerk", department=d.d2, region="441900")
    refused = await intake.client.get("/staff/statistics/monthly", params=PERIOD, headers=clerk)
    assert refused.status_code == 403


def csv_rows(content: bytes) -> Iterator[dict[str, str]]:
    assert content.startswith(b"\xef\xbb\xbf"), "no BOM: Excel would not read it as UTF-8"
    return csv.DictReader(io.StringIO(content.decode("utf-8-sig")))


async def test_the_csv_table_holds_the_same_figures(
    intake: Intake, departments: Departments
) -> None:
    d = departments
    auditor = intake.staff("auditor-1", "auditor")
    exported = await intake.client.get(
        "/staff/statistics/monthly.csv", params={**PERIOD, "department": d.d1}, headers=auditor
    )
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    table = list(csv_rows(exported.content))
    assert [(r["部门"], r["月份"]) for r in table] == [(d.d1, "2018-11"), (d.d1, "2018-12")]
    names = {
        "immediate": "即办率",
        "online": "网办率",
        "online_completed": "网上办结率",
        "on_time": "按时办结率",
        "good_rating": "好评率",
        "visits": "平均跑动次数",
        "instant_approval": "秒批率",
    }
    wanted = expected(d, d.d1)
    for line in table:
        figures = wanted[line["月份"]]
        assert int(line["申办件数"]) == figures["applications"]
        for key, name in names.items():
            numerator, denominator = figures[key]
            assert [int(line[f"{name}分子"]), int(line[f"{name}分母"])] == [numerator, denominator]
            if not denominator:
                assert line[name] == ""
            elif key == "visits":
                assert line[name] == f"{numerator / denominator:.2f}"
            else:
                assert line[name] == f"{100 * numerator / denominator:.2f}%"


async def test_a_period_that_is_not_months_in_order_is_refused(intake: Intake) -> None:
    auditor = intake.staff("auditor-1", "auditor")
    backwards = await intake.client.get(
        "/staff/statistics/monthly",
        params={"start_month": "2018-12", "end_month": "2018-11"},
        headers=auditor,
    )
    assert backwards.status_code == 422
    assert backwards.json()["type"] == "urn:wangban:problem:invalid-statistics-period"
    not_a_month = await intake.client.get(
        "/staff/statistics/monthly",
        params={"start_month": "2018-13", "end_month": "2018-12"},
        headers=auditor,
    )
    assert not_a_month.status_code == 422
