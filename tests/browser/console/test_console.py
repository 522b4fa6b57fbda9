"""The staff console in Debian's Chromium at a desk's size (1440×900), served by the gateway of
the whole platform (``wangban up``, demo data), with the demo staff of ``./dev staff``:

- a window clerk files an application for a person at the counter (全城通办), which the owning
  department's reviewer claims and approves;
- a clerk scans a paper material the applicant brought into their library and files with
  it; the receipt lists it among the materials received;
- a citizen's online application is denied by a reviewer with a reason, which the citizen's
  own view of it then shows;
- each demo staff login sees exactly the workspaces the authorisation table lets them use.

Every screen visited is checked with axe-core (no serious or critical violation) and
photographed; ``WANGBAN_SAVE_SCREENSHOTS=1`` copies the pictures to ``docs/screenshots/console/``.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from sandbox import PERSONAS
from tests.browser.console.citizens import application_once, citizen_headers, file_application
from tests.browser.console.steps import pick, sign_in, sign_out
from tests.browser.support import Desk, ScreenCheck
from tests.gateway.authorization_table import table_allows

expect.set_options(timeout=30_000)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SOCIAL_SECURITY_CARD = "社会保障卡申领"  # 人社局, a photo the applicant brings on paper
MARRIAGE_RECORDS = "婚姻登记档案查询"  # 东莞市民政局, decided by a person, data from sharing
AT_THE_WINDOW = next(p for p in PERSONAS if p.name == "黄伟明")
ONLINE = next(p for p in PERSONAS if p.name == "张丽娟")
OPERATION = re.compile(r"(GET|POST|PUT|DELETE) (/\S+)")
"""One of the operations a menu entry lists ("METHOD /path", space-separated)."""
DENIAL_REASON = "查询用途与所附说明不符，请核实后重新申请"

# The demo staff (./dev staff) and the principal of the authorisation table each one is.
LOGINS = {
    "clerk": "window_clerk",
    "reviewer": "reviewer",
    "author": "catalog_admin",
    "approver": "catalog_approver",
    "auditor": "auditor",
}


# --- the scenarios ------------------------------------------------------------------------------


async def test_a_window_application_is_accepted_then_approved_by_the_department(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    await sign_in(page, desk, "clerk")
    await check_screen(page, "home-clerk")
    await page.get_by_role("link", name="综合受理").click()
    await expect(page.get_by_role("heading", name="本窗口的申请")).to_be_visible()
    await check_screen(page, "window")

    await page.get_by_role("button", name="新建窗口申请").click()
    await page.get_by_label("搜索事项").fill(MARRIAGE_RECORDS)
    await page.get_by_role("button", name="搜索", exact=True).click()
    await page.get_by_role("button", name=f"选择 {MARRIAGE_RECORDS}").click()
    await expect(page.get_by_text(re.compile(f"已选事项：{MARRIAGE_RECORDS}"))).to_be_visible()
    await page.get_by_label("身份证号码").fill(AT_THE_WINDOW.id_number)
    await page.get_by_label("姓名", exact=True).fill(AT_THE_WINDOW.name)
    await pick(page, "核验方式", "人口库姓名比对")
    await pick(page, "查询内容", "结婚登记记录")
    await pick(page, "查询用途", "购房")
    await check_screen(page, "window-new")
    await page.get_by_role("button", name="提交申请").click()

    await expect(page.get_by_role("heading", name="受理回执")).to_be_visible()
    number = await receipt_number(page)
    # Who applied, masked as on every screen: the surname and the ID number's region and end.
    applicant = f"{AT_THE_WINDOW.name[0]}**（{AT_THE_WINDOW.id_number[:6]}********"
    await expect(page.get_by_text(applicant)).to_be_visible()
    await check_screen(page, "receipt")
    await sign_out(page)

    # The department's reviewer: the application in the queue, claimed, approved.
    await sign_in(page, desk, "reviewer")
    await page.get_by_role("link", name="审批").click()
    await expect(page.get_by_role("heading", name="本部门待办")).to_be_visible()
    # Accepted today: in time, with the working days left in words beside the colour.
    row = page.get_by_role("row").filter(has_text=number)
    light = re.compile(r"^绿灯 · (剩 \d+ 个工作日|今日到期)$")
    await expect(row.get_by_text(light)).to_be_visible()
    await check_screen(page, "review-queue")
    await page.get_by_role("link", name=re.compile(f"^查看 .* {number}$")).click()
    await expect(page.get_by_role("heading", name="案件详情")).to_be_visible()
    # The archive the applicant did not bring: the civil affairs bureau's data stood in for it.
    materials = page.get_by_role("table").filter(has_text="婚姻登记信息")
    await expect(materials.get_by_role("row").filter(has_text="数据共享替代")).to_contain_text(
        "已通过数据共享获取（东莞市民政局·"
    )
    await page.get_by_role("button", name="认领").click()
    await expect(page.get_by_text("本人（reviewer）")).to_be_visible()
    await check_screen(page, "review-case")
    await to_the_decision(page)
    await page.get_by_role("button", name="通过").click()
    dialog = page.get_by_role("dialog", name="通过")
    await dialog.get_by_label("意见").fill("档案已核实，准予出具")
    await dialog.get_by_role("button", name="确认通过").click()
    await expect(page.get_by_text("准予许可").first).to_be_visible()


async def test_a_paper_material_scanned_at_the_window_is_filed_and_on_the_receipt(
    page: Page, desk: Desk, check_screen: ScreenCheck, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(tiny_png())
    await sign_in(page, desk, "clerk")
    await page.get_by_role("link", name="综合受理").click()
    await page.get_by_role("button", name="新建窗口申请").click()
    await page.get_by_label("搜索事项").fill(SOCIAL_SECURITY_CARD)
    await page.get_by_role("button", name="搜索", exact=True).click()
    await page.get_by_role("button", name=f"选择 {SOCIAL_SECURITY_CARD}").click()
    await page.get_by_label("身份证号码").fill(AT_THE_WINDOW.id_number)
    await page.get_by_label("姓名", exact=True).fill(AT_THE_WINDOW.name)
    await pick(page, "核验方式", "人口库姓名比对")
    await pick(page, "相片来源", "上传新相片")
    await pick(page, "金融功能合作银行", "东莞银行")
    await pick(page, "领卡方式", "网点领取")
    await page.get_by_label("扫描件：近期免冠证件照").set_input_files(photo)
    await expect(page.get_by_text("已收取：photo.png")).to_be_visible()
    await check_screen(page, "window-scan")
    await page.get_by_role("button", name="提交申请").click()

    await expect(page.get_by_role("heading", name="受理回执")).to_be_visible()
    await expect(page.get_by_text("近期免冠证件照：已上传")).to_be_visible()
    await expect(page.get_by_text("户籍信息：数据共享替代")).to_be_visible()
    # Opened again later (from the list, not the filing's answer): the same receipt.
    await page.reload()
    await expect(page.get_by_text("近期免冠证件照：已上传")).to_be_visible()


def tiny_png() -> bytes:
    """A 1×1 white PNG: what the upload check recognises by its signature and IHDR chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def to_the_decision(page: Page) -> None:
    """From 审查 (claimed) to 决定: the workflow's next step, claimed in turn."""
    await page.get_by_role("button", name="转下一环节").click()
    dialog = page.get_by_role("dialog", name="转下一环节")
    await dialog.get_by_role("button", name="确认转下一环节").click()
    await expect(page.get_by_text("决定（当前）")).to_be_visible()
    await page.get_by_role("button", name="认领").click()
    await expect(page.get_by_role("button", name="通过")).to_be_enabled()


async def receipt_number(page: Page) -> str:
    number = (await page.locator("[data-field=application-number]").inner_text()).strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", number), number
    return number


async def test_a_reviewers_denial_reaches_the_citizen_with_its_reason(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    # The citizen files online (the mini-program's API; the development login as a persona).
    citizen = await citizen_headers(page.request, ONLINE, assurance="real_name")
    application_id = await file_application(
        page.request,
        citizen,
        ONLINE,
        await item_code(page, MARRIAGE_RECORDS),
        form={"query_type": "离婚登记记录", "purpose": "诉讼"},
    )

    await sign_in(page, desk, "reviewer")
    await page.get_by_role("link", name="审批").click()
    await page.get_by_role("link", name=re.compile(f"^查看 .* {application_id}$")).click()
    await page.get_by_role("button", name="认领").click()
    await to_the_decision(page)
    await page.get_by_role("button", name="不予许可").click()
    dialog = page.get_by_role("dialog", name="不予许可")
    await dialog.get_by_label("理由").fill(DENIAL_REASON)
    await check_screen(page, "review-deny")
    await dialog.get_by_role("button", name="确认不予许可").click()
    await expect(page.get_by_text("不予许可").first).to_be_visible()

    # The citizen's own view of the application: denied, with the reviewer's words (the
    # decision reaches intake as an event, a moment later).
    application = await application_once(
        page.request, citizen, application_id, statuses={"denied", "completed", "delivered"}
    )
    assert DENIAL_REASON in str(application["timeline"])


async def item_code(page: Page, name: str) -> str:
    found = await page.request.get("/api/v1/items", params={"q": name})
    items: list[dict[str, Any]] = (await found.json())["items"]
    return next(i["implementing_code"] for i in items if i["name"] == name)


async def test_each_role_sees_the_workspaces_the_table_allows_and_no_other(
    page: Page, desk: Desk, check_screen: ScreenCheck
) -> None:
    entries: dict[str, dict[str, set[str]]] = {}
    for username in LOGINS:
        await sign_in(page, desk, username)
        menu = page.get_by_role("navigation").locator("[data-operations]")
        shown: dict[str, set[str]] = {}
        for entry in await menu.all():
            name = (await entry.inner_text()).strip()
            listed = str(await entry.get_attribute("data-operations"))
            shown[name] = {" ".join(pair) for pair in OPERATION.findall(listed)}
        entries[username] = shown
        await check_screen(page, f"home-{username}")
        await sign_out(page)

    for username, principal in LOGINS.items():
        allowed = table_allows(principal)
        for name, operations in entries[username].items():
            assert operations & allowed, f"{username} sees {name}, which the table refuses"
    # Whatever one login sees, another whose table allows its operations sees too.
    everything = {name: ops for shown in entries.values() for name, ops in shown.items()}
    for username, principal in LOGINS.items():
        expected = {n for n, ops in everything.items() if ops & table_allows(principal)}
        assert set(entries[username]) == expected, username
    # A workspace's page is not reachable by its address either.
    await sign_in(page, desk, "clerk")
    await page.goto(f"{desk.url}review")
    await expect(page.get_by_role("heading", name="无权访问")).to_be_visible()
