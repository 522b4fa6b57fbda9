"""The staff console as the gateway serves it (``/console/`` of the platform that
``tests/browser/conftest.py`` starts), and the demo staff logins ``./dev staff`` makes there."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, Page

from tests.browser.console.steps import DOCS_SCREENSHOTS, VIEWPORT, WAIT_MS
from tests.browser.support import ROOT, Desk, Platform, ScreenCheck, opened_page, screen_checks

PASSWORD = "Console-test-2026"


@pytest.fixture(scope="session")
def desk(platform: Platform) -> Desk:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")}
    env["WANGBAN_DATA_DIR"] = str(platform.data_dir)
    env["WANGBAN_DEMO_STAFF_PASSWORD"] = PASSWORD
    made = subprocess.run(
        [str(ROOT / "dev"), "staff"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert made.returncode == 0, f"./dev staff failed:\n{made.stdout}\n{made.stderr}"
    return Desk(url=f"{platform.gateway}/console/", password=PASSWORD)


@pytest.fixture(scope="module")
def check_screen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScreenCheck]:
    """Checks a screen with axe and photographs it (``WANGBAN_SAVE_SCREENSHOTS=1`` copies the
    pictures to ``docs/screenshots/console/``)."""
    yield from screen_checks(tmp_path_factory.mktemp("console-screens"), DOCS_SCREENSHOTS)


@pytest.fixture
async def page(browser: Browser, desk: Desk) -> AsyncIterator[Page]:
    async with opened_page(browser, base_url=desk.url, viewport=VIEWPORT, wait_ms=WAIT_MS) as page:
        yield page
