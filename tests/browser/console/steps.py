"""What every console browser test does: sign a demo staff member in and out, pick from a
labelled select. The fixtures (``desk``, ``page``, ``check_screen``) are in the conftest."""

from __future__ import annotations

from playwright.async_api import Page, ViewportSize, expect

from tests.browser.support import ROOT, Desk

DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots" / "console"
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
"""A desk's screen."""
WAIT_MS = 30_000


async def sign_in(page: Page, desk: Desk, username: str) -> None:
    await page.goto(desk.url)
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(desk.password)
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("button", name="退出登录")).to_be_visible()


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="退出登录").click()
    await expect(page.get_by_label("用户名")).to_be_visible()


async def pick(page: Page, label: str, option: str) -> None:
    """A labelled native <select>."""
    await page.get_by_label(label, exact=True).select_option(label=option)
