"""审计 in the staff console (Debian's Chromium, the whole platform, the demo staff): a citizen's
居住证签注 reads her 户籍 and 社保 data from the departments (material resolution and 秒批), each
lookup an audit record; the auditor types her ID number and the dataset, and finds exactly the
records the API finds, her application among them; verifies the chain and is told it is intact,
with as many records as the log holds; and sees the checkpoints published of it. Every screen
visited is checked with axe-core and photographed (``audit-*.png``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import APIRequestContext, Page, expect

from sandbox import PERSONAS, RESIDENCE_PERMIT
from tests.browser.console.citizens import citizen_headers, finished_application
from tests.browser.console.steps import sign_in
from tests.browser.support import Desk, ScreenCheck

expect.set_options(timeout=30_000)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

WANG = next(p for p in PERSONAS if p.name == "王芳")  # 居住证签注: approved at once
DATASET = "gongan.huji"  # 户籍: read for the material and for the 秒批 rules
PAGE_SIZE = 20
CHECKPOINT_WAIT_S = 150.0


async def auditor_headers(request: APIRequestContext, desk: Desk) -> dict[str, str]:
    login = await request.post(
        "/api/v1/auth/staff", data={"username": "auditor", "password": desk.password}
    )
    assert login.ok, await login.text()
    return {"Authorization": f"Bearer {(await login.json())['access_token']}"}


async def search(
    request: APIRequestContext, headers: dict[str, str], **filters: Any
) -> list[dict[str, Any]]:
    """Every record the filters match, page after page."""
    records: list[dict[str, Any]] = []
    before = None
    while True:
        body = {**filters, "limit": 500, **({"before": before} if before else {})}
        page = await request.post("/api/v1/staff/audit/search", headers=headers, data=body)
        assert page.ok, await page.text()
        answer = await page.json()
        records += answer["items"]
        before = answer["next_before"]
        if before is None:
            return records


async def test_an_auditor_finds_a_persons_lookups_and_verifies_the_chain(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    citizen = await citizen_headers(page.request, WANG)
    application = await finished_application(page.request, citizen, WANG, RESIDENCE_PERMIT)
    number = application["id"]

    auditor = await auditor_headers(page.request, desk)
    subject = {"kind": "person", "id_number": WANG.id_number}
    hers = await search(page.request, auditor, subject=subject, dataset=DATASET)
    of_application = [r for r in hers if r["application_id"] == number]
    assert of_application, "the application made no lookup of her 户籍"
    assert all(r["outcome"] == "granted" for r in of_application)

    await sign_in(page, desk, "auditor")
    await page.get_by_role("link", name="审计").click()
    await expect(page.get_by_role("heading", name="数据查询留痕")).to_be_visible()
    await check_screen(page, "audit")

    await page.get_by_label("数据主体证件号码").fill(WANG.id_number)
    await page.get_by_label("数据集编码").fill(DATASET)
    await page.get_by_role("button", name="查询", exact=True).click()
    shown = min(len(hers), PAGE_SIZE)
    await expect(page.get_by_text(f"本页 {shown} 条记录")).to_be_visible()
    records = page.get_by_role("table").first
    await expect(records.get_by_role("row").filter(has_text=f"申请 {number}")).to_have_count(
        min(len(of_application), shown)
    )
    # Her number is masked on the screen as in the records.
    await expect(records.get_by_text(WANG.id_number)).to_have_count(0)
    await check_screen(page, "audit-records")

    # The whole log, as the API lists it, is what the verification walks.
    total = len(await search(page.request, auditor))
    await page.get_by_role("button", name="校验审计链").click()
    await expect(page.get_by_text(f"审计链完整：共 {total} 条记录")).to_be_visible()
    await check_screen(page, "audit-verified")

    # The checkpoint job signs the chain's head within a minute or so of the first lookup.
    published = await checkpoints(page.request, auditor)
    newest = published[0]
    assert newest["signature_valid"] and newest["in_chain"], newest
    await expect(page.get_by_role("heading", name="已发布的检查点")).to_be_visible()
    await page.get_by_role("button", name="刷新").click()
    row = page.get_by_role("row").filter(has_text=newest["kid"]).first
    await expect(row.get_by_role("cell").first).to_have_text(str(newest["seq"]))
    await expect(row).to_contain_text("有效")
    await expect(row).to_contain_text("一致")
    await check_screen(page, "audit-checkpoints")


async def checkpoints(request: APIRequestContext, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The published checkpoints, once there is one (the job looks every minute)."""
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while True:
        answer = await request.get("/api/v1/staff/audit/checkpoints", headers=headers)
        assert answer.ok, await answer.text()
        published: list[dict[str, Any]] = await answer.json()
        if published or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    assert published, f"no checkpoint published within {CHECKPOINT_WAIT_S:.0f} s"
    return published
