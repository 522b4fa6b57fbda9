"""The citizen mini-program's H5 build in Debian's Chromium at a phone's size (375×812),
against the whole platform (``wangban up``, demo data): search, guide, a 秒批 application with
its certificate and 好差评, a rule's refusal, a 容缺 supplement, 长辈版, and 我的's own screens
(实名/实人 status, a mobile number bound with the test-mode SMS code, a company bound and acted
for in a 秒批, a mistyped credit code refused, and who used my data).

Every screen visited is checked with axe-core (no ``serious`` or ``critical`` violation) and
photographed; with ``WANGBAN_SAVE_SCREENSHOTS=1`` the pictures are
also copied to ``docs/screenshots/miniprogram/``.

All browser tests live in this one module: the suite runs under ``--dist loadfile``, so they share
one platform, one client server and one browser on one worker.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect

from tests.browser.support import ROOT, ScreenCheck, opened_page, screen_checks

expect.set_options(timeout=30_000)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots" / "miniprogram"
VIEWPORT: ViewportSize = {"width": 375, "height": 812}
WAIT_MS = 30_000
"""Generous: two cores run the platform, the client server and the browser."""

# The demo data (docs/demo.md) these tests rely on.
CHEN = "陈炳坤"  # Dongguan hukou, head of household, 80+: the first persona of the login picker
LUO = "罗文华"
HUKOU_BOOK = "居民户口簿补领、换领"  # 秒批, data sharing + 告知承诺, result: 居民户口簿 certificate
RESIDENCE = "居住证签注"  # 秒批; 陈炳坤 fails rule non_local_hukou
RESIDENCE_REFUSAL = "东莞市户籍人员无需办理居住证签注"
RELIEF = "临时救助（急难型）申请"  # manual; its receipts may be missing (容缺, 15 working days)
RELIEF_RECEIPTS = "医疗费用票据或事故证明"
LIU = "刘建国"  # Hunan hukou, living in Dongguan; no other test here logs in as him
ZHOU = "周国华"  # legal representative of two companies; no other test here logs in as him
ZHOU_COMPANY = "东莞市华粤精密五金制品有限公司"  # 纳税信用A级, no tax owed
ZHOU_USCC = "9144190057012649X8"
INVOICE_LIMIT = "增值税防伪税控系统最高开票限额审批"  # 秒批 for a company (shared tax data)
PROPERTY_QUERY = "不动产登记信息查询（个人）"  # 秒批 for a person (shared property register)


@pytest.fixture(scope="module")
def check_screen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScreenCheck]:
    yield from screen_checks(tmp_path_factory.mktemp("screens"), DOCS_SCREENSHOTS)


@pytest.fixture
async def page(browser: Browser, client_url: str) -> AsyncIterator[Page]:
    async with opened_page(
        browser, base_url=client_url, viewport=VIEWPORT, wait_ms=WAIT_MS, touch=True
    ) as page:
        yield page


# --- driving the app ----------------------------------------------------------------------------


def current(page: Page) -> Locator:
    """The page on show: Taro's H5 router keeps the pages below it in the DOM, hidden."""
    return page.locator(".page:visible").last


async def open_screen(page: Page, path: str) -> None:
    await page.goto(f"/#/pages/{path}")


async def pick(page: Page, trigger: Locator, option: str) -> None:
    """Choose ``option`` in a Taro H5 picker: it opens a wheel that turns by dragging (a tap on
    an option is not enough), then 确定."""
    await trigger.click()
    overlay = page.locator(".weui-picker__overlay:not([style*='display: none'])")
    target = overlay.locator(".weui-picker__item", has_text=option).first
    await expect(target).to_be_visible()
    # The wheel slides up first: measure it where it stops.
    await page.wait_for_function(
        """(wheel) => wheel.getAnimations({ subtree: true }).every((a) => a.playState !== 'running')
            && wheel.getBoundingClientRect().bottom <= window.innerHeight + 1""",
        arg=await overlay.locator(".weui-picker").first.element_handle(),
        timeout=WAIT_MS,
    )
    indicator = await overlay.locator(".weui-picker__indicator").first.bounding_box()
    wheel = await overlay.locator(".weui-picker__group").first.bounding_box()
    box = await target.bounding_box()
    assert indicator and wheel and box
    # Drag from the indicator by the distance between it and the option, a whole number of
    # rows at a time: a drag that leaves the wheel ends there (mouseleave), so a far option
    # takes several strokes.
    x = box["x"] + box["width"] / 2
    start = indicator["y"] + indicator["height"] / 2
    row = box["height"]
    rows = round((box["y"] + box["height"] / 2 - start) / row)
    room = min(start - wheel["y"], wheel["y"] + wheel["height"] - start)
    per_stroke = max(1, int((room - 4) // row))
    while rows:
        stroke = max(-per_stroke, min(per_stroke, rows))
        end = start - stroke * row
        await page.mouse.move(x, start)
        await page.mouse.down()
        await page.mouse.move(x, (start + end) / 2, steps=5)
        await page.mouse.move(x, end, steps=5)
        await page.mouse.up()
        rows -= stroke
    # The wheel settles with a transition; 确定 takes the option under the indicator then.
    await page.wait_for_function(
        """(item) => {
            const content = item.parentElement
            const wanted = /translate3d\\([^,]+,\\s*(-?[\\d.]+)px/.exec(content.style.transform)
            const now = new DOMMatrix(getComputedStyle(content).transform).m42
            const box = item.getBoundingClientRect()
            const mark = content.parentElement.querySelector('.weui-picker__indicator')
                .getBoundingClientRect()
            const middle = box.top + box.height / 2
            return wanted !== null && Math.abs(now - Number(wanted[1])) < 0.5
                && middle > mark.top && middle < mark.bottom
        }""",
        arg=await target.element_handle(),
        timeout=WAIT_MS,
    )
    await overlay.locator(".weui-picker__action", has_text="确定").click()
    await expect(trigger).to_have_text(option)


async def log_in(page: Page, persona: str) -> None:
    """The development login of the H5 build (仅限本地开发) as a demo persona, with the openid
    the screen proposes for it (an ID number binds to one openid)."""
    await open_screen(page, "login/index")
    await expect(current(page).get_by_text("仅限本地开发")).to_be_visible()
    persona_box = page.get_by_label("演示人物").first
    if (await persona_box.inner_text()).strip() != persona:
        await pick(page, persona_box, persona)
    await expect(page.get_by_role("textbox").first).to_have_value(re.compile(r"^dev-"))
    await current(page).get_by_text("以该人物登录").click()
    await expect(page.get_by_role("heading", name="热门事项")).to_be_visible()


async def accept_commitment(page: Page) -> None:
    await current(page).get_by_text("我已阅读并接受告知承诺").click()
    await expect(current(page).get_by_text("✓ 以告知承诺代替此材料").first).to_be_visible()


async def apply_for(page: Page, item: str) -> None:
    """From 首页: search ``item``, open its guide, then its form."""
    await open_screen(page, f"search/index?q={item}")
    await page.get_by_role("link").filter(has_text=item).first.click()
    await expect(page.get_by_role("heading", name=item)).to_be_visible()
    await current(page).get_by_text("在线申请").click()
    await expect(current(page).get_by_text("填写申请表")).to_be_visible()


def status_tag(page: Page) -> Locator:
    """The application's status on its screen (earlier pages stay in the DOM, hidden)."""
    return page.locator(".nut-tag:visible").first


async def expect_status(page: Page, status: str | re.Pattern[str]) -> None:
    """Wait for the application's status on its screen, which follows an application the
    platform is working on by itself (no reload: the citizen just watches)."""
    await expect(page.get_by_role("heading", name="办理进度")).to_be_visible()
    await expect(status_tag(page)).to_have_text(status, timeout=WAIT_MS)


def png_bytes() -> bytes:
    """A small valid PNG (a 4×4 grey square): the scanned receipt the citizen uploads."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80\x80\x80" * 4 for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def open_from_me(page: Page, entry: str) -> None:
    """Tap one of 我的's rows (实名认证, 手机号, …): each opens a screen of its own."""
    await open_screen(page, "me/index")
    row = current(page).get_by_role("link").filter(has_text=entry)
    try:
        await expect(row).to_be_visible(timeout=10_000)
    except AssertionError:
        # Taro's H5 router, asked by URL for the tab page the shown screen was opened from, now
        # and then keeps that screen on top (seen once on a loaded CI machine): a reload shows
        # 我的 as the URL says, as it would for a citizen who refreshes.
        await page.reload()
    await row.click()
    await expect(current(page).get_by_role("link").filter(has_text=entry)).to_have_count(0)


def picker(page: Page, name: str) -> Locator:
    """A control that opens a picker: a button named by its field's label, then its choice."""
    return current(page).get_by_role("button", name=re.compile("^" + re.escape(name)))


# --- the scenarios ------------------------------------------------------------------------------


async def test_search_in_chinese_and_pinyin_initials_then_read_the_guide(
    page: Page, check_screen: ScreenCheck
) -> None:
    await open_screen(page, "login/index")
    await expect(current(page).get_by_text("仅限本地开发")).to_be_visible()
    await check_screen(page, "login")
    await log_in(page, LUO)
    await check_screen(page, "home")

    # From the home screen's search box, in Chinese.
    home_search = page.get_by_role("searchbox").first
    await home_search.fill("户口")
    await home_search.press("Enter")
    results = page.get_by_role("link").filter(has_text=HUKOU_BOOK)
    await expect(results.first).to_be_visible()
    await expect(current(page).get_by_text(re.compile(r"共 \d+ 项")).first).to_be_visible()
    await check_screen(page, "search")

    # The same item by the initials of its pinyin (户口簿 → hkb), as typed on the search screen.
    query = page.get_by_role("searchbox").last
    await query.fill("hkb")
    await expect(page.get_by_role("link").filter(has_text=HUKOU_BOOK).first).to_be_visible()
    await query.fill("jzz")
    await expect(page.get_by_role("link").filter(has_text=RESIDENCE).first).to_be_visible()
    await expect(page.get_by_role("link").filter(has_text=HUKOU_BOOK)).to_have_count(0)

    # A word no item holds (qqzz) is left out: the 户口 items are the results.
    await query.fill("户口 qqzz")
    await expect(page.get_by_role("link").filter(has_text=HUKOU_BOOK).first).to_be_visible()
    await expect(current(page).get_by_text("您可能在找")).to_have_count(0)
    # Nothing matches (the characters in a wrong order): the nearest item and the hotline.
    await query.fill("口户簿")
    await expect(current(page).get_by_text("您可能在找")).to_be_visible()
    await expect(page.get_by_role("link").filter(has_text=HUKOU_BOOK).first).to_be_visible()
    await expect(current(page).get_by_text("12345政务服务便民热线")).to_be_visible()
    await expect(page.get_by_role("button", name="拨打 12345")).to_be_visible()
    await check_screen(page, "search-nothing-found")

    # Narrowed to one department, chosen from the catalogue's own list (GET /facets): the one
    # with the most items, first in the picker.
    facets = await (await page.request.get("/api/v1/facets")).json()
    busiest, its_items = facets["departments"][0]["name"], facets["departments"][0]["items"]
    await query.fill("")
    await expect(current(page).get_by_text(re.compile(r"共 \d+ 项")).first).to_be_visible()
    await pick(page, picker(page, "实施部门"), busiest)
    await expect(current(page).get_by_text(f"共 {its_items} 项")).to_be_visible()
    shown = await current(page).locator(".row-sub").all_inner_texts()
    assert shown and all(line.startswith(busiest) for line in shown), shown
    await pick(page, picker(page, "实施部门"), "不限部门")
    await query.fill("jzz")
    await expect(page.get_by_role("link").filter(has_text=RESIDENCE).first).to_be_visible()

    # By keyboard: a result takes the focus and Enter opens it.
    result = page.get_by_role("link").filter(has_text=RESIDENCE).first
    await result.focus()
    await expect(result).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=RESIDENCE)).to_be_visible()
    await expect(
        current(page).get_by_text("本事项支持秒批：符合条件的申请由系统即时办结")
    ).to_be_visible()
    await expect(page.get_by_role("heading", name="申请材料")).to_be_visible()
    await expect(current(page).get_by_text("户籍信息").first).to_be_visible()
    await expect(current(page).get_by_text("免提交（政府数据共享获取）").first).to_be_visible()
    await expect(page.get_by_role("heading", name="承诺办结时限")).to_be_visible()
    await expect(current(page).get_by_text("在线申请")).to_be_visible()
    await check_screen(page, "guide")


async def test_miaopi_with_shared_data_gives_a_verifiable_certificate_then_rating(
    page: Page, check_screen: ScreenCheck
) -> None:
    await log_in(page, CHEN)
    await apply_for(page, HUKOU_BOOK)
    # The register entry comes from data sharing: shown as such, never asked for.
    await expect(current(page).get_by_text("户号：由政府数据预填，无需填写")).to_be_visible()
    await expect(current(page).get_by_text("免提交（政府数据共享获取）").first).to_be_visible()
    await pick(page, picker(page, "补换领原因"), "遗失")
    await pick(page, picker(page, "领取方式"), "电子证照")
    await accept_commitment(page)
    await check_screen(page, "apply")
    await current(page).get_by_text("提交申请").click()

    # 秒批: the result within seconds, with the certificate issued.
    await expect_status(page, re.compile("^(已办结|结果已送达)$"))
    await check_screen(page, "application")

    await open_screen(page, "wallet/index")
    certificate = page.get_by_role("link").filter(has_text="居民户口簿")
    await expect(certificate.first).to_be_visible()
    await check_screen(page, "wallet")
    async with page.expect_response(re.compile(r"/api/v1/certificates/[^/?]+$")) as answer:
        await certificate.first.click()
    qr = current(page).get_by_role("img", name=re.compile(r"^居民户口簿.*的亮证二维码$"))
    await expect(qr).to_be_visible()
    assert (await qr.evaluate("(img) => img.naturalWidth")) > 100
    await check_screen(page, "certificate")

    # What the QR code encodes (the page draws it from qr_payload) verifies as genuine.
    payload = (await (await answer.value).json())["qr_payload"]
    assert payload.startswith("WBCERT:1:")
    verified = await page.request.get("/api/v1/certificates/verify", params={"qr": payload})
    assert verified.ok, await verified.text()
    verdict = await verified.json()
    assert verdict["verdict"] == "valid", verdict
    assert verdict["type_name"].startswith("居民户口簿"), verdict
    # The verify screen the certificate links to checks the same payload.
    await current(page).get_by_text("核验此证照").click()
    await expect(page.get_by_role("heading", name="证照有效")).to_be_visible()
    await check_screen(page, "verify")

    # 好差评 on the finished application.
    await open_screen(page, "applications/index")
    await expect(page.get_by_role("link").filter(has_text=HUKOU_BOOK).first).to_be_visible()
    await check_screen(page, "applications")
    await page.get_by_role("link").filter(has_text=HUKOU_BOOK).first.click()
    await expect(page.get_by_role("heading", name="评价本次服务（好差评）")).to_be_visible()
    await expect(picker(page, "评分")).to_have_text("非常满意")
    efficiency = current(page).get_by_role("button", name="办事效率")
    await expect(efficiency).to_have_attribute("aria-pressed", "false")
    await efficiency.click()
    await expect(efficiency).to_have_attribute("aria-pressed", "true")
    comment = current(page).get_by_label("评价内容")
    await comment.fill("在手机上几秒钟就办好了")
    await current(page).get_by_text("提交评价").click()
    await expect(current(page).get_by_text("感谢您的评价")).to_be_visible()

    await page.goto("/#/pages/messages/index")
    await expect(current(page).get_by_text(HUKOU_BOOK).first).to_be_visible()
    await check_screen(page, "messages")


async def test_a_failed_rule_shows_its_message(page: Page, check_screen: ScreenCheck) -> None:
    await log_in(page, CHEN)  # Dongguan hukou: a 居住证 endorsement is not for him
    await apply_for(page, RESIDENCE)
    await current(page).locator("#field-residence_address").fill("东莞市莞城街道市桥路8号")
    await pick(page, picker(page, "居住证明类型"), "自有住房")
    await accept_commitment(page)
    await current(page).get_by_text("提交申请").click()

    # Decided (已办结) with the refusal in the timeline and the rule's own words as the reason.
    await expect_status(page, "已办结")
    await expect(current(page).get_by_text(f"原因：{RESIDENCE_REFUSAL}")).to_be_visible()
    await expect(current(page).get_by_text("不予通过", exact=True)).to_be_visible()
    await check_screen(page, "application-denied")


async def test_rongque_application_is_asked_for_the_missing_material_and_supplements_it(
    page: Page, check_screen: ScreenCheck
) -> None:
    await log_in(page, CHEN)
    await apply_for(page, RELIEF)
    await expect(
        current(page).get_by_text("容缺受理后须在 15 个工作日内补齐").first
    ).to_be_visible()
    await pick(page, picker(page, "困难类型"), "突发重大疾病")
    await current(page).locator("#field-description").fill("老伴突发脑梗住院，医疗费用负担较重")
    await current(page).locator("#field-household_size").fill("2")
    await current(page).locator("#field-bank_name").fill("中国工商银行")
    await current(page).locator("#field-bank_account").fill("6222020200112233445")
    await accept_commitment(page)
    await current(page).get_by_text("提交申请").click()  # without the receipts: 容缺

    supplement = page.get_by_role("heading", name="补正 / 补齐材料")
    await expect(supplement).to_be_visible()
    await expect(current(page).get_by_text("容缺（待补齐）")).to_be_visible()
    await check_screen(page, "application-rongque")

    upload = current(page).get_by_role("button", name="需上传")
    async with page.expect_file_chooser() as chooser:
        await upload.click()
    await (await chooser.value).set_files(
        {"name": "receipts.png", "mimeType": "image/png", "buffer": png_bytes()}
    )

    await expect(supplement).to_have_count(0)
    await expect(current(page).get_by_text("容缺（待补齐）")).to_have_count(0)
    await expect(current(page).get_by_text("已上传").first).to_be_visible()
    await check_screen(page, "application-supplemented")


async def font_px(locator: Locator) -> float:
    """The element's computed font size. Read again while the screen re-renders: an element
    just replaced is no longer in the document and has no computed style."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        size = str(
            await locator.evaluate("(e) => (e.isConnected ? getComputedStyle(e).fontSize : '')")
        )
        if size.endswith("px"):
            return float(size.removesuffix("px"))
        assert time.monotonic() < deadline, f"no computed font size for {locator}"
        await asyncio.sleep(0.1)


async def test_a_lost_session_keeps_the_form_and_a_double_tap_files_once(page: Page) -> None:
    """The session ends while the citizen fills the form (both tokens refused, as after a
    revocation): submitting leads to login, logging in again comes back to the form as it was,
    and a double tap on 提交申请 then files one application."""
    await log_in(page, LIU)
    await apply_for(page, RESIDENCE)
    address = current(page).locator("#field-residence_address")
    await address.fill("东莞市南城街道鸿福路100号")
    await pick(page, picker(page, "居住证明类型"), "自有住房")
    await accept_commitment(page)
    # Both tokens become ones the gateway refuses: the access token is answered 401 and the
    # refresh that follows is refused too.
    await page.evaluate(
        """() => {
            const stored = JSON.parse(localStorage.getItem('wangban.session'))
            stored.data.accessToken = 'revoked-access-token'
            stored.data.refreshToken = 'revoked-refresh-token'
            localStorage.setItem('wangban.session', JSON.stringify(stored))
        }"""
    )
    await current(page).get_by_text("提交申请").click()
    await expect(current(page).get_by_text("仅限本地开发")).to_be_visible()

    # Logging in again returns to the form, restored.
    persona_box = page.get_by_label("演示人物").first
    if (await persona_box.inner_text()).strip() != LIU:
        await pick(page, persona_box, LIU)
    await current(page).get_by_text("以该人物登录").click()
    await expect(page.get_by_role("heading", name=RESIDENCE)).to_be_visible()
    await expect(current(page).get_by_text("已恢复上次未提交的内容")).to_be_visible()
    await expect(current(page).locator("#field-residence_address")).to_have_value(
        "东莞市南城街道鸿福路100号"
    )
    await expect(picker(page, "居住证明类型")).to_contain_text("自有住房")

    await current(page).get_by_text("提交申请").dblclick()
    await expect(page.get_by_role("heading", name="办理进度")).to_be_visible()
    await open_screen(page, "applications/index")
    mine = page.get_by_role("link").filter(has_text=RESIDENCE)
    await expect(mine.first).to_be_visible()
    await expect(mine).to_have_count(1)


async def test_care_mode_renders_the_screens_in_large_type(
    page: Page, check_screen: ScreenCheck
) -> None:
    await log_in(page, CHEN)
    heading = page.get_by_role("heading", name="热门事项").locator(".section-title:visible")
    normal = {"heading": await font_px(heading)}
    await open_screen(page, f"search/index?q={RELIEF}")
    title = page.get_by_role("link").filter(has_text=RELIEF).locator(".row-title:visible").first
    await expect(title).to_be_visible()
    normal["item"] = await font_px(title)
    await open_screen(page, "me/index")
    care_switch = current(page).get_by_role("switch", name="长辈版")
    await expect(care_switch).not_to_be_checked()
    await check_screen(page, "me")
    await care_switch.click()
    await expect(care_switch).to_be_checked()
    await expect(current(page).and_(page.locator(".care"))).to_be_visible()
    await check_screen(page, "me", care=True)

    await page.get_by_role("link", name="首页").click()
    await expect(current(page).and_(page.locator(".care"))).to_be_visible()
    assert await font_px(heading) >= 1.2 * normal["heading"]
    await check_screen(page, "home", care=True)

    await open_screen(page, f"search/index?q={RELIEF}")
    title = page.get_by_role("link").filter(has_text=RELIEF).locator(".row-title:visible").first
    await expect(title).to_be_visible()
    assert await font_px(title) >= 1.2 * normal["item"]
    await check_screen(page, "search", care=True)
    await page.get_by_role("link").filter(has_text=RELIEF).first.click()
    await expect(page.get_by_role("heading", name=RELIEF)).to_be_visible()
    await check_screen(page, "guide", care=True)
    await current(page).get_by_text("在线申请").click()
    await expect(current(page).get_by_text("填写申请表")).to_be_visible()
    await check_screen(page, "apply", care=True)

    for screen in ("applications", "wallet", "messages"):
        await open_screen(page, f"{screen}/index")
        await expect(current(page).and_(page.locator(".care"))).to_be_visible()
        await check_screen(page, screen, care=True)


async def test_me_screens_real_name_phone_companies_and_who_used_my_data(
    page: Page, check_screen: ScreenCheck
) -> None:
    await log_in(page, ZHOU)

    # 实名/实人: the development login is 实人; the H5 build offers no face verification.
    await open_from_me(page, "实名认证 / 实人认证")
    await expect(page.get_by_role("heading", name="认证状态")).to_be_visible()
    await expect(current(page).get_by_text("已实人认证", exact=True)).to_be_visible()
    await expect(current(page).get_by_text("周**")).to_be_visible()
    masked_id = current(page).get_by_text(re.compile(r"^证件号码："))
    await expect(masked_id).to_have_text(re.compile(r"^证件号码：4419\S*\*+\S*1X$"))
    await expect(current(page).get_by_text("您已完成实名认证")).to_be_visible()
    await expect(current(page).get_by_text("您已完成实人认证")).to_be_visible()
    await expect(current(page).get_by_role("button", name="开始人脸核身")).to_have_count(0)
    await expect(current(page).get_by_role("textbox")).to_have_count(0)
    await check_screen(page, "realname")

    # 手机号: in test mode no SMS goes out; the code is shown in a development banner instead.
    await open_from_me(page, "手机号（短信通知）")
    await current(page).get_by_label("手机号码").fill("13912345678")
    await current(page).get_by_role("button", name="获取验证码").click()
    await expect(current(page).get_by_text(re.compile(r"^验证码已发送至 139"))).to_be_visible()
    await expect(
        current(page).get_by_role("button", name=re.compile(r"^\d+ 秒后可重新获取$"))
    ).to_be_disabled()
    banner = current(page).get_by_text(re.compile(r"^测试环境验证码：\d{6}$"))
    await expect(banner).to_be_visible()
    await check_screen(page, "phone")
    code = (await banner.inner_text()).strip().removeprefix("测试环境验证码：")
    await current(page).get_by_label("短信验证码").fill(code)
    await current(page).get_by_role("button", name="确认绑定").click()
    bound = current(page).get_by_text(re.compile(r"^短信通知将发送至 "))
    await expect(bound).to_have_text(re.compile(r"^短信通知将发送至 139\*+5678$"))
    await expect(current(page).get_by_label("短信验证码")).to_have_count(0)
    await check_screen(page, "phone-bound")

    # 我代办的企业: a wrong check character is refused in words; the real code binds.
    await open_from_me(page, "我代办的企业 / 以企业名义办理")
    await expect(current(page).get_by_text("还没有绑定企业")).to_be_visible()
    uscc = current(page).get_by_label("统一社会信用代码")
    await uscc.fill(ZHOU_USCC[:-1] + "7")
    await current(page).get_by_role("button", name="绑定企业").click()
    await expect(
        current(page).get_by_text("统一社会信用代码有误：统一社会信用代码校验位不正确")
    ).to_be_visible()
    await expect(current(page).get_by_text("还没有绑定企业")).to_be_visible()
    await uscc.fill(ZHOU_USCC)
    await current(page).get_by_role("button", name="绑定企业").click()
    await expect(current(page).get_by_text(ZHOU_COMPANY, exact=True)).to_be_visible()
    await expect(current(page).get_by_text(f"统一社会信用代码：{ZHOU_USCC}")).to_be_visible()
    await expect(current(page).get_by_text("法定代表人", exact=True)).to_be_visible()
    await expect(current(page).get_by_text("校验位不正确")).to_have_count(0)
    await current(page).get_by_text(f"以企业名义办理：{ZHOU_COMPANY}").click()
    await expect(
        current(page).get_by_role("radio", name=f"以企业名义办理：{ZHOU_COMPANY}")
    ).to_be_checked()
    await expect(page.get_by_text("办理身份已切换")).to_be_hidden()  # the toast goes by itself
    await check_screen(page, "companies")
    await open_screen(page, "me/index")
    await expect(current(page).get_by_text(f"当前以企业名义办理：{ZHOU_COMPANY}")).to_be_visible()

    # As the company: a 秒批 on the company's shared tax and licence data.
    await apply_for(page, INVOICE_LIMIT)
    await expect(current(page).get_by_text(f"当前以企业名义办理：{ZHOU_COMPANY}")).to_be_visible()
    await pick(page, picker(page, "申请最高开票限额（元）"), "100000")
    await current(page).locator("#field-reason").fill("订单增加，单张发票金额超过一万元")
    await current(page).get_by_text("提交申请").click()
    await expect_status(page, re.compile("^(已办结|结果已送达)$"))
    await expect(
        current(page).get_by_text(f"以企业名义申请，统一社会信用代码：{ZHOU_USCC}")
    ).to_be_visible()
    await expect(current(page).get_by_text("不予通过", exact=True)).to_have_count(0)
    await check_screen(page, "application-company")

    # Back to himself: a 秒批 whose material the property register supplies.
    await open_screen(page, "companies/index")
    await current(page).get_by_text("以个人名义办理").click()
    await expect(current(page).get_by_role("radio", name="以个人名义办理")).to_be_checked()
    await open_screen(page, "me/index")
    await expect(current(page).get_by_text("当前以个人名义办理")).to_be_visible()
    await apply_for(page, PROPERTY_QUERY)
    await expect(current(page).get_by_text("当前以企业名义办理")).to_have_count(0)
    await expect(current(page).get_by_text("免提交（政府数据共享获取）").first).to_be_visible()
    await pick(page, picker(page, "查询内容"), "本人名下不动产信息")
    await pick(page, picker(page, "查询用途"), "购房资格审核")
    await current(page).get_by_text("提交申请").click()
    await expect_status(page, re.compile("^(已办结|结果已送达)$"))
    await expect(current(page).get_by_text("以企业名义申请")).to_have_count(0)

    # 谁用了我的数据: the property register's lookup for that application, his only.
    await open_from_me(page, "谁用了我的数据")
    lookups = current(page).get_by_role("listitem")
    # 秒批 read the register to decide (the filing itself is listed too, 使用者：本人).
    lookup = (
        lookups.filter(has_text=f"办理事项：{PROPERTY_QUERY}")
        .filter(has_text="使用者：自动审批（秒批）")
        .first
    )
    await expect(lookup).to_be_visible()
    await expect(lookup.locator(".row-title")).to_have_text("不动产登记信息")
    provider = lookup.get_by_text(re.compile("^提供部门："))
    await expect(provider).to_have_text("提供部门：东莞市不动产登记中心 · 结果：已提供")
    # What was read, in the catalogue's words (not property_count).
    read = lookup.get_by_text(re.compile("^查询项目："))
    await expect(read).to_have_text("查询项目：本市名下不动产数量")
    await expect(lookups.filter(has_text=INVOICE_LIMIT)).to_have_count(0)
    await check_screen(page, "data-usage")
    await lookup.get_by_role("button", name="查看办件").click()
    await expect(page.get_by_role("heading", name=PROPERTY_QUERY)).to_be_visible()

    # 长辈版 on two of these screens.
    await open_screen(page, "me/index")
    care_switch = current(page).get_by_role("switch", name="长辈版")
    await care_switch.click()
    await expect(care_switch).to_be_checked()
    await current(page).get_by_role("link").filter(has_text="谁用了我的数据").click()
    await expect(current(page).and_(page.locator(".care"))).to_be_visible()
    await expect(
        current(page).get_by_role("listitem").filter(has_text=PROPERTY_QUERY).first
    ).to_be_visible()
    await check_screen(page, "data-usage", care=True)
    await open_screen(page, "companies/index")
    await expect(current(page).and_(page.locator(".care"))).to_be_visible()
    await expect(current(page).get_by_text(ZHOU_COMPANY, exact=True)).to_be_visible()
    await check_screen(page, "companies", care=True)
    await open_screen(page, "realname/index")
    await expect(current(page).and_(page.locator(".care"))).to_be_visible()
    await expect(current(page).get_by_text("已实人认证", exact=True)).to_be_visible()
    await check_screen(page, "realname", care=True)
