"""The console's 统计 in Debian's Chromium against the whole platform (``wangban up``, demo data):
citizens file two applications to 东莞市公安局 through the public API — a 秒批 (居住证签注, decided
by the machine at once, then rated 5) and one a person decides (无犯罪记录证明开具, left open),
by people no other module applies as — and the department's reviewer's statistics page shows,
for this month and this department, the figures the test computes itself:

- the applications' figures: the row as it stood before (other modules of the run share the
  platform and its applications) plus what the API tells about the two filed here (their
  channel, status, due date and timeline; their items' committed days and visits);
- the catalogue's figures: computed from the public catalogue (every published item of the
  department, its guide's time limits, channels, online depth and 秒批).

The CSV exports download rows with the same numbers. Every screen is checked with axe and
photographed (``WANGBAN_SAVE_SCREENSHOTS=1`` copies them to ``docs/screenshots/console/``).
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import APIRequestContext, Page, expect

from sandbox import PERSONAS, RESIDENCE_PERMIT, persona_for
from tests.browser.console.citizens import (
    application_once,
    citizen_headers,
    file_application,
    staff_headers,
)
from tests.browser.console.steps import pick, sign_in
from tests.browser.support import Desk, ScreenCheck

expect.set_options(timeout=30_000)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CST = timezone(timedelta(hours=8), "CST")
DEPARTMENT = "东莞市公安局"
REVIEWER = "police-reviewer"  # the department's demo reviewer (./dev staff)
REGION = "441900"
CRIMINAL_RECORD = "无犯罪记录证明开具"  # decided by a person
ONLINE = next(p for p in PERSONAS if p.name == "周国华")
ONLINE_CHANNELS = ("mini_program", "web")
DONE = ("completed", "delivered")

APPLICATION_FIGURES = {
    "immediate": "即办率",
    "online": "网办率",
    "online_completed": "网上办结率",
    "on_time": "按时办结率",
    "good_rating": "好评率",
    "visits": "平均跑动次数",
    "instant_approval": "秒批率",
}
CATALOGUE_FIGURES = {
    "immediate": "即办率",
    "online": "网办率",
    "fully_online": "全程网办率",
    "auto_approval": "秒批率",
    "compression": "时限压缩率",
}
Figures = dict[str, list[int]]
"""count → [n]; each figure → [numerator, denominator]."""


def this_month() -> str:
    return f"{datetime.now(CST):%Y-%m}"


def shown(key: str, numerator: int, denominator: int) -> str:
    """A figure as the console writes it (and, without the fraction, the CSV)."""
    if not denominator:
        value = "—"
    elif key == "visits":
        value = f"{numerator / denominator:.2f}"
    else:
        value = f"{100 * numerator / denominator:.2f}%"
    return f"{value}（{numerator}/{denominator}）"


# --- what the APIs tell -------------------------------------------------------------------------


async def guide(request: APIRequestContext, code: str) -> dict[str, Any]:
    """The content of the item's current published version (its public guide)."""
    answer = await request.get(f"/api/v1/items/{code}")
    assert answer.ok, await answer.text()
    content: dict[str, Any] = (await answer.json())["content"]
    return content


async def department_guides(request: APIRequestContext) -> list[dict[str, Any]]:
    """Every published item of the department in its region, as the public catalogue tells."""
    codes: list[str] = []
    page = 1
    while True:
        answer = await request.get("/api/v1/items", params={"department": DEPARTMENT, "page": page})
        assert answer.ok, await answer.text()
        body = await answer.json()
        codes += [i["implementing_code"] for i in body["items"]]
        if not body["items"] or len(codes) >= body["total"]:
            break
        page += 1
    guides = [await guide(request, code) for code in codes]
    return [g for g in guides if g["department"] == DEPARTMENT and g["region_code"] == REGION]


def catalogue_figures(guides: list[dict[str, Any]]) -> Figures:
    online = [g for g in guides if {"网上", "掌上"} & set(g["channels"])]
    timed = [g for g in guides if (g["legal_days"] or 0) > 0 and g["committed_days"] is not None]
    return {
        "count": [len(guides)],
        "immediate": [sum(g["committed_days"] == 0 for g in guides), len(guides)],
        "online": [len(online), len(guides)],
        "fully_online": [sum(g["online_depth"] == 4 for g in online), len(online)],
        "auto_approval": [sum(bool(g["auto_approval"]) for g in guides), len(guides)],
        "compression": [
            sum(g["legal_days"] - g["committed_days"] for g in timed),
            sum(g["legal_days"] for g in timed),
        ],
    }


async def baseline(request: APIRequestContext, staff: dict[str, str]) -> Figures:
    """This month's row of the department before this module files anything (zeros if none)."""
    month = this_month()
    answer = await request.get(
        "/api/v1/stats/intake/monthly",
        params={"start_month": month, "end_month": month},
        headers=staff,
    )
    assert answer.ok, await answer.text()
    figures: Figures = {"count": [0], **{key: [0, 0] for key in APPLICATION_FIGURES}}
    for row in (await answer.json())["rows"]:
        if row["department"] == DEPARTMENT:
            figures["count"] = [row["applications"]]
            for key in APPLICATION_FIGURES:
                figures[key] = [row[key]["numerator"], row[key]["denominator"]]
    return figures


def completion_date(application: dict[str, Any]) -> date | None:
    for status in DONE:
        for entry in application["timeline"]:
            if entry["to_status"] == status:
                return datetime.fromisoformat(entry["at"]).astimezone(CST).date()
    return None


def add_application(
    figures: Figures, application: dict[str, Any], item: dict[str, Any], score: int | None
) -> None:
    """``figures`` with one more application, by the definitions the console states."""
    online = application["channel"] in ONLINE_CHANNELS
    done = application["status"] in DONE
    completed_on = completion_date(application)
    due = date.fromisoformat(application["due_date"]) if application["due_date"] else None
    by_machine = any(
        e["to_status"] == "approved" and e["actor"] == "auto" for e in application["timeline"]
    )

    def bump(key: str, numerator: bool, counted: bool = True) -> None:
        figures[key] = [figures[key][0] + int(numerator), figures[key][1] + int(counted)]

    figures["count"] = [figures["count"][0] + 1]
    bump("immediate", item["committed_days"] == 0)
    bump("online", online)
    bump("online_completed", done and online and item["visits"] == 0)
    with_due = done and due is not None and completed_on is not None
    on_time = completed_on is not None and due is not None and completed_on <= due
    bump("on_time", with_due and on_time, with_due)
    bump("good_rating", score is not None and score >= 4, score is not None)
    if item["visits"] is not None:
        figures["visits"] = [figures["visits"][0] + item["visits"], figures["visits"][1] + 1]
    bump("instant_approval", bool(item["auto_approval"]) and by_machine)


# --- the page -----------------------------------------------------------------------------------


async def row_cells(page: Page, table: str, month: str) -> dict[str, str]:
    row = page.get_by_test_id(table).locator(f'tr[data-row="{DEPARTMENT} {month}"]')
    await expect(row).to_be_visible()
    cells = {}
    for cell in await row.locator("[data-figure]").all():
        cells[str(await cell.get_attribute("data-figure"))] = (await cell.inner_text()).strip()
    return cells


def expected_cells(figures: Figures, names: dict[str, str]) -> dict[str, str]:
    cells = {"count": str(figures["count"][0])}
    for key in names:
        cells[key] = shown(key, *figures[key])
    return cells


async def downloaded_row(page: Page, button: str, tmp: Path) -> dict[str, str]:
    async with page.expect_download() as started:
        await page.get_by_role("button", name=button).click()
    download = await started.value
    path = tmp / download.suggested_filename
    await download.save_as(path)
    content = path.read_bytes()
    assert content.startswith(b"\xef\xbb\xbf"), "no BOM: Excel would not read it as UTF-8"
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    return next(r for r in rows if r["部门"] == DEPARTMENT and r["月份"] == this_month())


def expected_csv(figures: Figures, names: dict[str, str], count: str) -> dict[str, str]:
    row = {count: str(figures["count"][0])}
    for key, name in names.items():
        numerator, denominator = figures[key]
        row[f"{name}分子"], row[f"{name}分母"] = str(numerator), str(denominator)
        row[name] = shown(key, numerator, denominator).split("（")[0].replace("—", "")
    return row


async def test_the_statistics_show_the_figures_the_filed_applications_imply(
    page: Page, desk: Desk, check_screen: ScreenCheck, tmp_path: Path
) -> None:
    request = page.request
    reviewer = await staff_headers(request, desk, REVIEWER)
    expected = await baseline(request, reviewer)

    # A 秒批: decided by the machine and delivered, then rated 5 by the applicant.
    permit = await guide(request, RESIDENCE_PERMIT)
    resident = persona_for(RESIDENCE_PERMIT)
    resident_headers = await citizen_headers(request, resident)
    instant_id = await file_application(request, resident_headers, resident, RESIDENCE_PERMIT)
    instant = await application_once(request, resident_headers, instant_id, statuses=DONE)
    rated = await request.post(
        f"/api/v1/applications/{instant_id}/rating", headers=resident_headers, data={"score": 5}
    )
    assert rated.ok, await rated.text()
    add_application(expected, instant, permit, score=5)

    # One a person decides: open while the statistics are read.
    found = await request.get("/api/v1/items", params={"q": CRIMINAL_RECORD})
    code = next(
        i["implementing_code"]
        for i in (await found.json())["items"]
        if i["name"] == CRIMINAL_RECORD
    )
    records = await guide(request, code)
    online_headers = await citizen_headers(request, ONLINE)
    manual_id = await file_application(
        request,
        online_headers,
        ONLINE,
        code,
        form={"purpose": "就业", "delivery_method": "电子证明"},
    )
    manual = await application_once(request, online_headers, manual_id)
    add_application(expected, manual, records, score=None)
    assert {instant["department"], manual["department"]} == {DEPARTMENT}
    assert (
        datetime.fromisoformat(instant["submitted_at"]).astimezone(CST).strftime("%Y-%m")
        == this_month()
    )

    catalogue = catalogue_figures(await department_guides(request))

    # The department's reviewer: this month's row of each table says the same.
    await sign_in(page, desk, REVIEWER)
    await page.get_by_role("link", name="统计").click()
    await expect(page.get_by_role("heading", name="统计分析（三率一数）")).to_be_visible()
    await expect(page.get_by_text(f"本部门：{DEPARTMENT}")).to_be_visible()
    month = this_month()
    assert await row_cells(page, "application-figures", month) == expected_cells(
        expected, APPLICATION_FIGURES
    )
    assert await row_cells(page, "catalogue-figures", month) == expected_cells(
        catalogue, CATALOGUE_FIGURES
    )
    # Each chart is an image named by its figures (the table is its accessible view).
    summary = await page.get_by_role("img").first.get_attribute("aria-label")
    assert summary and summary.startswith("办件指标按月走势：") and f"{month} 即办率" in summary
    await check_screen(page, "stats")

    # The exports: the same numbers.
    applications_csv = await downloaded_row(page, "导出办件统计表（CSV）", tmp_path)
    wanted = expected_csv(expected, APPLICATION_FIGURES, "申办件数")
    assert {k: applications_csv[k] for k in wanted} == wanted
    catalogue_csv = await downloaded_row(page, "导出事项统计表（CSV）", tmp_path)
    wanted = expected_csv(catalogue, CATALOGUE_FIGURES, "事项数")
    assert {k: catalogue_csv[k] for k in wanted} == wanted
    await expect(page.get_by_role("status").filter(has_text="已导出")).to_be_visible()
    await page.get_by_test_id("catalogue-figures").scroll_into_view_if_needed()
    await check_screen(page, "stats-catalogue")


async def test_an_auditor_picks_the_department_and_the_months(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    await sign_in(page, desk, "auditor")
    await page.get_by_role("link", name="统计").click()
    await expect(page.get_by_role("heading", name="统计分析（三率一数）")).to_be_visible()
    month = this_month()
    await pick(page, "部门", DEPARTMENT)
    await pick(page, "起始月份", month)
    await pick(page, "截止月份", month)
    await page.get_by_role("button", name="查询").click()
    # The all-departments table stays up until the department's answer replaces it: one row.
    table = page.get_by_test_id("application-figures")
    await expect(table.locator("tr[data-row]")).to_have_count(1)
    await expect(table.locator("tr[data-row]")).to_have_attribute(
        "data-row", f"{DEPARTMENT} {month}"
    )
    await check_screen(page, "stats-auditor")
