"""整改 in the staff console (Debian's Chromium, the whole platform, the demo staff): a citizen's
居住证签注 is approved at once by 秒批 (东莞市公安局); she rates it badly with a comment; the
department's reviewer finds the case in 整改 with the comment and 15 working days left, replies,
records the return visit (回访) and closes it, and the case shows as closed, also under the
state filter. Every screen visited is checked with axe-core and photographed
(``rectification-*.png``)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from sandbox import PERSONAS, RESIDENCE_PERMIT
from tests.browser.console.citizens import citizen_headers, finished_application
from tests.browser.console.steps import pick, sign_in
from tests.browser.support import Desk, ScreenCheck

expect.set_options(timeout=30_000)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ITEM = "居住证签注"  # 东莞市公安局, 秒批: approved at once for 邓美玲 (docs/demo.md)
DENG = next(p for p in PERSONAS if p.name == "邓美玲")
COMMENT = "签注要求的材料说明前后不一致，跑了两次窗口"
REPLY = "已统一办事指南与窗口告知单的材料说明，并对窗口人员做了培训"
RETURN_VISIT = "电话回访申请人，申请人对整改表示认可"


async def test_a_bad_rating_is_replied_to_visited_back_and_closed(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    citizen = await citizen_headers(page.request, DENG)
    application = await finished_application(page.request, citizen, DENG, RESIDENCE_PERMIT)
    number = application["id"]
    rated = await page.request.post(
        f"/api/v1/applications/{number}/rating",
        headers=citizen,
        data={"score": 1, "tags": ["多次跑动", "指南不清"], "comment": COMMENT},
    )
    assert rated.status == 201, await rated.text()

    await sign_in(page, desk, "police-reviewer")
    await page.get_by_role("link", name="整改").click()
    await expect(page.get_by_role("heading", name="本部门的差评整改")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=number)
    await expect(row.get_by_text(COMMENT)).to_be_visible()
    await expect(row.get_by_text("1 分（非常不满意）")).to_be_visible()
    await expect(row.get_by_text("多次跑动、指南不清")).to_be_visible()
    # Rated today: the day of the rating does not count, 15 working days are left.
    await expect(row.get_by_text("剩 15 个工作日")).to_be_visible()
    await expect(row.get_by_text("待答复", exact=True)).to_be_visible()
    # Only the step the state allows is offered: no return visit or closing before the reply.
    await expect(row.get_by_role("button", name=re.compile("^(登记回访|办结) "))).to_have_count(0)
    await check_screen(page, "rectification")

    await row.get_by_role("button", name=f"答复 {ITEM} {number}").click()
    dialog = page.get_by_role("dialog", name=f"答复：{ITEM}")
    await dialog.get_by_role("button", name="确认答复").click()
    await expect(dialog.get_by_text("请填写整改答复")).to_be_visible()  # nothing was sent
    await dialog.get_by_label("整改答复").fill(REPLY)
    await check_screen(page, "rectification-reply")
    await dialog.get_by_role("button", name="确认答复").click()
    await expect(page.get_by_role("status").filter(has_text="已答复")).to_be_visible()
    await expect(row.get_by_text("已答复", exact=True)).to_be_visible()
    await expect(row.get_by_text(f"答复：{REPLY}")).to_be_visible()
    await expect(row.get_by_role("button", name=f"办结 {ITEM} {number}")).to_have_count(0)

    await row.get_by_role("button", name=f"登记回访 {ITEM} {number}").click()
    dialog = page.get_by_role("dialog", name=f"登记回访：{ITEM}")
    await dialog.get_by_label("回访记录").fill(RETURN_VISIT)
    await dialog.get_by_role("button", name="确认登记回访").click()
    await expect(row.get_by_text(f"回访：{RETURN_VISIT}")).to_be_visible()

    await row.get_by_role("button", name=f"办结 {ITEM} {number}").click()
    await expect(page.get_by_role("status").filter(has_text="整改单已办结")).to_be_visible()
    await expect(row.get_by_text("已办结", exact=True)).to_be_visible()
    await expect(row.get_by_text(re.compile(r"^办结于 "))).to_be_visible()
    await expect(row.get_by_role("button")).to_have_count(0)

    # As the department's list has it from now on: among the closed ones, not the open ones.
    await pick(page, "整改状态", "已办结")
    await page.get_by_role("button", name="刷新").click()
    await expect(page.get_by_role("row").filter(has_text=number)).to_have_count(1)
    await check_screen(page, "rectification-closed")
    await pick(page, "整改状态", "待答复")
    await page.get_by_role("button", name="刷新").click()
    await expect(page.get_by_role("row").filter(has_text=number)).to_have_count(0)
