"""事项管理 in the staff console (Debian's Chromium, the whole platform, the demo staff):

- 民政局's catalogue author revises the published 秒批 item 高龄老人津贴申领, lowers the age its
  rule requires, and dry-runs the draft against the applications citizens filed a moment ago:
  the console lists exactly those whose outcome the change would flip. Publishing alone is
  refused (四眼原则: the public item is unchanged), the author submits and cannot approve; the
  department's approver signs in, sees the change with its dry run, approves, and the public
  item has the new rule.
- An import of a small JSON file with one bad row fails as a whole, showing that row's error;
  the export downloads the department's items.
- A citizen's search that finds nothing offers the 12345 hotline and appears in 未找到结果的搜索
  for the author, with its count, until the author marks it 已处理.

Every screen visited is checked with axe-core and photographed (``catalog-*.png``).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import time
import uuid
from datetime import date
from typing import Any

import pytest
from playwright.async_api import FilePayload, Page, expect

from sandbox import ELDERLY_ALLOWANCE, PERSONAS, Persona
from tests.browser.console.citizens import citizen_headers, file_application
from tests.browser.console.steps import WAIT_MS, sign_in, sign_out
from tests.browser.support import Desk, ScreenCheck

expect.set_options(timeout=30_000)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ITEM = "高龄老人津贴申领"  # 东莞市民政局, 秒批 (age, hukou from shared data, own declaration)
OLD_RULE = "applicant.age >= 80"
NEW_AGE = 70
NEW_RULE = f"applicant.age >= {NEW_AGE}"
CHEN = next(p for p in PERSONAS if p.name == "陈炳坤")  # 82, 东莞户籍: approved
HE = next(p for p in PERSONAS if p.name == "何秀英")  # 74, 东莞户籍: too young under the old rule
YI = next(p for p in PERSONAS if p.name == "易秋菊")  # 85, 湖南户籍: not local
OUTCOMES = {"approve": "通过", "deny": "不予许可", "refer": "转人工"}
"""How the console names an outcome."""
TOKENS = "wangban.console.tokens"
"""Where the console keeps its tokens (sessionStorage)."""


def age_of(persona: Persona, today: date) -> int:
    born = date(
        int(persona.id_number[6:10]), int(persona.id_number[10:12]), int(persona.id_number[12:14])
    )
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def replayed(persona: Persona, *, receiving_elsewhere: bool, today: date) -> str:
    """What the new rules answer on a stored case. The replay cannot see shared data (cases
    keep none), so the hukou rule refers: a case that neither the age nor the applicant's own
    declaration denies is referred (转人工)."""
    if age_of(persona, today) < NEW_AGE or receiving_elsewhere:
        return "deny"
    return "refer"


async def apply_and_wait(
    page: Page, headers: dict[str, str], persona: Persona, *, receiving_elsewhere: bool
) -> tuple[str, str]:
    """Files the item for ``persona`` and waits for 秒批's decision: (id, approve | deny)."""
    # The sample form (bank details) with the applicant's own declaration.
    form = {
        **CHEN.form(ELDERLY_ALLOWANCE, today=date.today()),
        "receiving_elsewhere": receiving_elsewhere,
    }
    application_id = await file_application(
        page.request, headers, persona, ELDERLY_ALLOWANCE, form=form
    )
    # Decided once the timeline has the decision (a denial may move on to 办结 at once).
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        answer = await page.request.get(f"/api/v1/applications/{application_id}", headers=headers)
        reached = {entry["to_status"] for entry in (await answer.json())["timeline"]}
        decided = reached & {"approved", "denied"}
        if decided or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert len(decided) == 1, (persona.name, reached)
    return application_id, "deny" if decided == {"denied"} else "approve"


async def public_rules(page: Page) -> list[str]:
    guide = await (await page.request.get(f"/api/v1/items/{ELDERLY_ALLOWANCE}")).json()
    return [rule["expression"] for rule in guide["content"]["rules"]]


async def test_a_rule_change_is_dry_run_then_published_only_with_a_second_person(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    # Recent applications, decided by the current rules (age 80, hukou, own declaration).
    today = date.today()
    chen = await citizen_headers(page.request, CHEN)
    filings = [
        (CHEN, chen, True),  # declares receiving it elsewhere: denied, and still would be
        (CHEN, chen, False),  # (after the denial, the one grant is still open to him)
        (HE, await citizen_headers(page.request, HE), False),
        (YI, await citizen_headers(page.request, YI), False),
    ]
    outcomes: dict[str, tuple[str, str]] = {}
    for persona, headers, receiving in filings:
        application_id, actual = await apply_and_wait(
            page, headers, persona, receiving_elsewhere=receiving
        )
        would = replayed(persona, receiving_elsewhere=receiving, today=today)
        outcomes[application_id] = (actual, would)
    flipped = {i for i, (actual, would) in outcomes.items() if actual != would}
    kept = set(outcomes) - flipped
    assert flipped and kept, outcomes  # the test can tell a listed case from one that is not
    assert OLD_RULE in await public_rules(page)

    # The author finds the published item and opens a revision.
    await sign_in(page, desk, "author")
    await page.get_by_role("link", name="事项管理").click()
    await expect(page.get_by_role("heading", name="本部门事项")).to_be_visible()
    await page.get_by_label("名称或实施编码").fill(ITEM)
    await page.get_by_role("button", name="查询").click()
    await expect(
        page.get_by_role("link", name=re.compile(f"^查看 {ITEM} 第\\d+版$"))
    ).to_have_count(1)
    await check_screen(page, "catalog-list")
    await page.get_by_role("link", name=re.compile(f"^查看 {ITEM} 第\\d+版$")).click()
    await expect(
        page.get_by_role("heading", name=re.compile(f"^{ITEM}（第\\d+版）$"))
    ).to_be_visible()
    await expect(page.get_by_text(OLD_RULE)).to_be_visible()
    await check_screen(page, "catalog-version")
    await page.get_by_role("button", name="开始修订").click()
    await expect(page.get_by_role("status")).to_have_text("已创建修订草稿")
    await expect(page.get_by_text("草稿", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="发布前还需完善")).to_be_visible()

    # It changes the age rule and saves the draft.
    await page.get_by_role("button", name="编辑草稿").click()
    rule = page.get_by_role("group", name="规则 1")
    await expect(rule.get_by_label("规则标识")).to_have_value("age_80")
    await rule.get_by_label("表达式（CEL）").fill(NEW_RULE)
    await rule.get_by_label("不满足时的理由").fill(f"申请人未满{NEW_AGE}周岁")
    await check_screen(page, "catalog-edit")
    await page.get_by_role("button", name="保存草稿").click()
    await expect(page.get_by_role("status")).to_have_text("草稿已保存")
    await expect(page.get_by_text(NEW_RULE)).to_be_visible()

    # The dry run lists exactly the filed applications whose outcome the change flips.
    await page.get_by_role("button", name="试运行规则").click()
    result = page.get_by_test_id("dry-run-result")
    await expect(result.get_by_text(f"结果改变 {len(flipped)} 件", exact=True)).to_be_visible()
    changes = result.get_by_role("table")
    for application_id in flipped:
        actual, would = outcomes[application_id]
        row = changes.get_by_role("row").filter(has_text=application_id)
        await expect(row).to_have_count(1)
        await expect(row.get_by_role("cell").nth(2)).to_have_text(OUTCOMES[actual])
        await expect(row.get_by_role("cell").nth(3)).to_have_text(OUTCOMES[would])
    for application_id in kept:
        await expect(changes.get_by_text(application_id)).to_have_count(0)
    await changes.scroll_into_view_if_needed()
    await check_screen(page, "catalog-dry-run")

    # Publishing alone is refused; the public item is unchanged.
    await page.get_by_role("button", name="直接发布").click()
    await expect(page.get_by_role("alert")).to_contain_text("需提交审核")
    rules = await public_rules(page)
    assert OLD_RULE in rules and NEW_RULE not in rules
    await check_screen(page, "catalog-refused")

    # Submitted for review; the author has no way to approve it, nor does the API let them.
    await page.get_by_role("button", name="提交审核").click()
    await expect(page.get_by_role("status")).to_contain_text("已提交审核")
    await expect(page.get_by_text("待审核", exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="批准发布")).to_have_count(0)
    version_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    token = await page.evaluate(f"JSON.parse(sessionStorage.getItem('{TOKENS}')).access")
    own = await page.request.post(
        f"/api/v1/staff/catalog/item-versions/{version_id}/approve",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert own.status == 403, await own.text()
    assert OLD_RULE in await public_rules(page)
    await sign_out(page)

    # The department's approver: the change waits for them, with the dry run it was submitted
    # with; they approve it and citizens see the new rule.
    await sign_in(page, desk, "approver")
    await page.get_by_role("link", name="事项管理").click()
    await expect(page.get_by_role("heading", name="待我审核的变更")).to_be_visible()
    await check_screen(page, "catalog-waiting")
    await page.get_by_role("link", name=re.compile(f"^查看 {ITEM} 第\\d+版$")).click()
    await expect(page.get_by_role("heading", name="提交时的试运行")).to_be_visible()
    for application_id in flipped:
        await expect(page.get_by_role("row").filter(has_text=application_id)).to_have_count(1)
    await page.get_by_role("button", name="批准发布").click()
    dialog = page.get_by_role("dialog", name="批准发布")
    await check_screen(page, "catalog-approve")
    await dialog.get_by_role("button", name="确认批准发布").click()
    await expect(page.get_by_role("status")).to_have_text("已批准并发布")
    await expect(page.get_by_text("已发布", exact=True)).to_be_visible()
    rules = await public_rules(page)
    assert NEW_RULE in rules and OLD_RULE not in rules

    await page.get_by_role("link", name="规则变更记录").click()
    records = page.get_by_role("row").filter(has_text=ELDERLY_ALLOWANCE)
    await expect(records.first).to_contain_text("已批准")
    await expect(records.first).to_contain_text(f"中 {len(flipped)} 件结果改变")
    await check_screen(page, "catalog-rule-changes")


async def test_an_import_with_a_bad_row_shows_its_error_and_imports_nothing(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    await sign_in(page, desk, "author")
    await page.get_by_role("link", name="事项管理").click()
    await page.get_by_role("link", name="导入导出").click()
    await expect(page.get_by_role("heading", name="导入事项清单")).to_be_visible()

    # The export: the department's items, the newest version of each.
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="导出 JSON").click()
    exported: list[dict[str, Any]] = json.loads(
        (await (await downloading.value).path()).read_text(encoding="utf-8")
    )
    assert exported and {row["department"] for row in exported} == {"东莞市民政局"}

    # Two new items made from an exported one; the second promises more days than the law
    # allows at all.
    good = {**exported[0], "implementing_code": f"IMPORT-{uuid.uuid4().hex[:10]}"}
    bad = {**exported[0], "implementing_code": f"IMPORT-{uuid.uuid4().hex[:10]}"}
    bad["committed_days"] = 400
    upload: FilePayload = {
        "name": "items.json",
        "mimeType": "application/json",
        "buffer": json.dumps([good, bad], ensure_ascii=False).encode("utf-8"),
    }
    await page.get_by_label("事项文件（CSV 或 JSON）").set_input_files(files=upload)
    await page.get_by_role("button", name="开始导入").click()
    await expect(page.locator("[data-field=job-status]")).to_have_text("导入失败")
    error = page.get_by_role("row").filter(has_text="committed_days").first
    await expect(error.get_by_role("cell").first).to_have_text("2")
    await check_screen(page, "catalog-import")
    # All or nothing: the good row was not imported either.
    for row in (good, bad):
        guide = await page.request.get(f"/api/v1/items/{row['implementing_code']}")
        assert guide.status == 404
    listed = await page.request.get(
        "/api/v1/staff/catalog/item-versions",
        params={"q": good["implementing_code"]},
        headers={
            "Authorization": "Bearer "
            + await page.evaluate(f"JSON.parse(sessionStorage.getItem('{TOKENS}')).access")
        },
    )
    assert (await listed.json())["total"] == 0


async def test_a_search_that_found_nothing_reaches_the_admins_list_until_marked_handled(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    # A citizen's search through the gateway that finds nothing: the answer offers the hotline.
    word = "zq" + "".join(random.choices(string.ascii_lowercase, k=10))
    found = await (await page.request.get("/api/v1/items", params={"q": word})).json()
    assert found["total"] == 0
    assert found["help"]["hotlines"][0]["phone"] == "12345"

    await sign_in(page, desk, "author")
    await page.get_by_role("link", name="事项管理").click()
    await page.get_by_role("link", name="未找到结果的搜索").click()
    await expect(page.get_by_role("heading", name="未找到结果的搜索", exact=True)).to_be_visible()
    # The catalog writes what it counted every few seconds: read the list again until it is in.
    row = page.get_by_role("row").filter(has_text=word)
    deadline = time.monotonic() + WAIT_MS / 1000
    while not await row.count() and time.monotonic() < deadline:
        await asyncio.sleep(1)
        await page.reload()
        await expect(
            page.get_by_role("heading", name="未找到结果的搜索", exact=True)
        ).to_be_visible()
    await expect(row.get_by_role("cell").nth(1)).to_have_text("1")
    await check_screen(page, "catalog-unmatched")

    await row.get_by_role("button", name=f"将“{word}”标记为已处理").click()
    await expect(page.get_by_role("status")).to_have_text(f"“{word}”已标记为已处理")
    await expect(row).to_have_count(0)
