"""The whole platform and Debian's Chromium, for the browser tests of both clients (the
citizen's mini-program in ``miniprogram/``, the staff console in ``console/``); one module per
client: the suite runs under ``--dist loadfile``, so a module's tests share one worker.

- ``platform``: ``python -m wangban up`` on free ports and a fresh data directory, as
  ``tests/platform/test_up.py`` starts it (demo data seeded), with the staff console's build
  served by the gateway at ``/console/`` (``console_dist``), until every service's ``/readyz``
  answers; SIGTERM to its process group at teardown.
- ``console_dist``: ``console/dist``, built when missing or older than its sources.
- ``browser``: headless ``/usr/bin/chromium`` through Playwright's async API (the suite's
  event loop is pytest-asyncio's; never a downloaded browser).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Playwright, async_playwright

from tests.browser.support import (
    CHROMIUM,
    CONSOLE,
    PLATFORM_READY_S,
    ROOT,
    Platform,
    newest_mtime,
    npm_run,
    stop_group,
    tail,
    wait_for_other_builds,
)
from wangban.embedded import free_ports
from wangban.settings import SERVICE_NAMES


@pytest.fixture(scope="session")
def console_dist() -> Path:
    dist = CONSOLE / "dist"
    sources = [CONSOLE / "src", CONSOLE / "index.html", CONSOLE / "package.json"]
    sources.append(ROOT / "contracts" / "clients" / "gateway.json")
    wait_for_other_builds("vite build")
    index = dist / "index.html"
    if not index.exists() or index.stat().st_mtime < newest_mtime(sources):
        npm_run(CONSOLE, "build")
    assert index.exists()
    return dist


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, console_dist: Path) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("platform")
    data_dir = base / "wangban-data"
    *service_ports, broker_port = free_ports(len(SERVICE_NAMES) + 1)
    ports = dict(zip(SERVICE_NAMES, service_ports, strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")}
    env.update({f"WANGBAN_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env["WANGBAN_EMBEDDED_KAFKA_PORT"] = str(broker_port)
    env["WANGBAN_DATA_DIR"] = str(data_dir)
    env["WANGBAN_GATEWAY_CONSOLE_DIR"] = str(console_dist)
    # Every browser test's requests come from one address (127.0.0.1), a whole office's logins
    # and filings within minutes: the per-address limits guard the Internet-facing gateway and
    # have their own tests (tests/gateway), so here they stand as for an office behind one NAT.
    for limit in ("LOGIN", "STAFF_LOGIN", "SUBMISSIONS"):
        env[f"WANGBAN_GATEWAY_{limit}_PER_MINUTE_PER_IP"] = "600"
    log = base / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "wangban", "up"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_ready(up, ports, log)
        yield Platform(ports=ports, data_dir=data_dir)
    finally:
        stop_group(up, timeout_s=90)


def _wait_ready(up: subprocess.Popen[bytes], ports: dict[str, int], log: Path) -> None:
    ready: set[str] = set()
    deadline = time.monotonic() + PLATFORM_READY_S
    with httpx.Client(timeout=3) as client:
        while ready != set(ports):
            if up.poll() is not None:
                raise AssertionError(f"wangban up exited early:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not ready after {PLATFORM_READY_S:.0f} s: {sorted(set(ports) - ready)}"
                    f"\n{tail(log)}"
                )
            for name, port in ports.items():
                if name not in ready:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                            ready.add(name)
            time.sleep(0.5)


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def chromium() -> str:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(playwright: Playwright, chromium: str) -> AsyncIterator[Browser]:
    browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
    try:
        yield browser
    finally:
        await browser.close()
