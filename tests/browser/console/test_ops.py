"""The staff console's 运维 workspace in Debian's Chromium, against the whole platform
(``wangban up``, demo data) and the demo ``ops`` login of ``./dev staff``:

- a real dead letter: the catalogue's outbox carries an ``item.withdrawn`` intake cannot read
  (``tests/gateway/dead_letters.py``), the platform's relay publishes it and intake's consumer
  dead-letters it; ops sees every service up in the health table with intake's dead letter
  counted, opens intake's dead letters, replays it after confirming, and the list shows it
  replayed; the service, asked through the gateway, says so too, and the event went back to
  intake (which, unable to read it still, dead-letters it again);
- notify's push messages filtered to failures: a citizen whose WeChat refuses every message
  for good (the simulated channel's ``sim-permanent``) consented to every notice and applied
  online for an item 秒批 grants at once; the approval's notice that failed is listed under
  仅失败 and not under 已送达.

Every screen visited is checked with axe-core and photographed (``ops-*``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Locator, Page, expect
from sqlalchemy import func, select

from notify_service.simulated import PERMANENT_FAILURE_OPENID
from sandbox import PERSONAS
from tests.browser.console.citizens import citizen_headers, file_application
from tests.browser.console.steps import pick, sign_in
from tests.browser.support import Desk, Platform, ScreenCheck
from tests.gateway.dead_letters import dead_letter_of, send_unreadable_withdrawal
from tests.kit.support import eventually
from wangban.commands import command_database
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings

expect.set_options(timeout=30_000)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SERVICES = ("gateway", "catalog", "intake", "approval", "sharing", "notify")
UNREACHABLE = next(p for p in PERSONAS if p.name == "赵志刚")
APPROVED_AT_ONCE = "11441900007331435W-001007001000-01"  # 城乡居民医保参保登记: 秒批 approves


@pytest.fixture
async def platform_database(platform: Platform) -> AsyncIterator[Database]:
    """The platform's own database, found as the ``wangban`` commands find it (the embedded
    PostgreSQL in its data directory), whatever the test run's settings say."""
    settings = Settings(data_dir=platform.data_dir, database_url=None)
    async with command_database(settings) as database:
        yield database


async def _dead_letters_with(database: Database, event_id: str) -> int:
    outbox = load_spec("intake").outbox
    assert outbox is not None
    table = outbox.tables.dead_letter
    async with database.sessionmaker() as session:
        found = await session.execute(
            select(func.count()).select_from(table).where(table.c.payload.contains(event_id))
        )
        return int(found.scalar_one())


async def _intake_dead_letters_as_the_service_says(
    platform: Platform, desk: Desk
) -> dict[str, dict[str, object]]:
    """Intake's dead letters, replayed ones too, asked through the gateway as ops."""
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=30) as client:
        login = await client.post(
            "/api/v1/auth/staff", json={"username": "ops", "password": desk.password}
        )
        assert login.status_code == 200, login.text
        answer = await client.get(
            "/api/v1/staff/ops/dead-letters/intake",
            params={"include_replayed": "true"},
            headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        )
    assert answer.status_code == 200, answer.text
    return {str(row["id"]): row for row in answer.json()}


async def _an_application_whose_notice_fails(page: Page) -> str:
    """A citizen WeChat refuses for good applies online for an item 秒批 grants him at once;
    the application's id. His one-time consents to every notice make notify push the approval
    by WeChat, which fails."""
    citizen = await citizen_headers(
        page.request, UNREACHABLE, assurance="real_name", openid=PERMANENT_FAILURE_OPENID
    )
    templates = await page.request.get("/api/v1/subscriptions/templates", headers=citizen)
    assert templates.ok, await templates.text()
    consents = {t["template_id"]: "accept" for t in await templates.json()}
    subscribed = await page.request.post(
        "/api/v1/subscriptions", headers=citizen, data={"results": consents}
    )
    assert subscribed.ok, await subscribed.text()
    return await file_application(page.request, citizen, UNREACHABLE, APPROVED_AT_ONCE)


async def _shown_after_refreshing(page: Page, row: Locator) -> bool:
    await page.get_by_role("button", name="刷新").click()
    await expect(page.locator("[data-message], .t-table__empty").first).to_be_visible()
    return await row.count() > 0


async def test_ops_replays_a_dead_letter_with_every_service_up(
    page: Page,
    desk: Desk,
    platform: Platform,
    platform_database: Database,
    check_screen: ScreenCheck,
) -> None:
    event_id = await send_unreadable_withdrawal(platform_database)

    async def dead_lettered() -> bool:
        return await dead_letter_of(platform_database, event_id) is not None

    await eventually(dead_lettered, timeout_s=60, interval_s=0.3)
    letter = await dead_letter_of(platform_database, event_id)
    assert letter is not None and letter["consumer"] == "intake"
    letter_id = str(letter["id"])

    await sign_in(page, desk, "ops")
    await page.get_by_role("link", name="运维").click()
    await expect(page.get_by_role("heading", name="服务状态", level=1)).to_be_visible()
    # Every service answers, with its database migrated and, where it uses one, the broker up.
    for service in SERVICES:
        row = page.locator(f'tr[data-service="{service}"]')
        await expect(row.locator('[data-field=state][data-state="up"]')).to_have_text("正常")
        await expect(row.locator("[data-field=database]")).to_contain_text("已迁移")
    gateway = page.locator('tr[data-service="gateway"]')
    await expect(gateway.locator("[data-field=broker]")).to_have_text("不使用")
    intake = page.locator('tr[data-service="intake"]')
    await expect(intake.locator("[data-field=broker]")).to_contain_text("正常")
    await expect(intake.locator("[data-consumer=intake]")).to_contain_text(re.compile(r"积压 \d+"))
    await expect(intake.locator("[data-field=dead-letters]")).to_have_attribute("data-count", "1")
    await check_screen(page, "ops-health")

    await intake.get_by_role("link", name="查看申请受理的 1 条死信").click()
    await expect(page.get_by_role("heading", name="申请受理的死信")).to_be_visible()
    row = page.locator(f'tr[data-dead-letter="{letter_id}"]')
    await expect(row.locator("[data-field=event-id]")).to_have_text(str(letter["event_id"]))
    await expect(row.locator("[data-field=state]")).to_have_text("未重放")
    await expect(row.locator("[data-field=error]")).to_contain_text("data does not match")
    await check_screen(page, "ops-dead-letters")

    await row.get_by_role("button", name=re.compile("^重放 ")).click()
    dialog = page.get_by_role("dialog", name="重放死信")
    await expect(dialog.get_by_text(str(letter["event_id"]))).to_be_visible()
    await check_screen(page, "ops-replay-confirm")
    await dialog.get_by_role("button", name="确认重放").click()
    await expect(page.get_by_text(f"已重放事件 {letter['event_id']}")).to_be_visible()
    await expect(row.locator("[data-field=state]")).to_have_text(
        re.compile(r"^已重放\d{4}/\d{2}/\d{2} \d{2}:\d{2}$")
    )
    await expect(row.get_by_role("button", name=re.compile("^重放 "))).to_have_count(0)
    await check_screen(page, "ops-dead-letters-replayed")

    # The service says so itself, and the event went back on its topic: intake read it again
    # and, as it still cannot, dead-lettered it once more.
    answered = await _intake_dead_letters_as_the_service_says(platform, desk)
    assert answered[letter_id]["replayed_at"]

    async def read_again() -> bool:
        return await _dead_letters_with(platform_database, event_id) == 2

    await eventually(read_again, timeout_s=60, interval_s=0.3)

    # Notify's push messages, failures only: the refused approval notice, nothing delivered.
    application_id = await _an_application_whose_notice_fails(page)
    await page.get_by_role("navigation", name="运维").get_by_role("link", name="消息投递").click()
    await expect(page.get_by_role("heading", name="消息投递", level=1)).to_be_visible()
    await pick(page, "投递状态", "仅失败")
    failed = page.locator("tr[data-message]").filter(has_text=application_id)
    await eventually(lambda: _shown_after_refreshing(page, failed), timeout_s=60, interval_s=1)
    await expect(failed.locator("[data-field=status]")).to_have_text("永久失败")
    await expect(failed).to_contain_text("审批通过")
    await expect(failed).to_contain_text("微信订阅消息")
    await expect(page.locator("[data-status=delivered]")).to_have_count(0)
    await check_screen(page, "ops-deliveries-failures")
    await pick(page, "投递状态", "已送达")
    await expect(page.locator("tr[data-message]").filter(has_text=application_id)).to_have_count(0)
    await expect(page.locator("[data-status=permanent-failure]")).to_have_count(0)
