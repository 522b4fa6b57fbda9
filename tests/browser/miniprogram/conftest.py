"""The whole platform, the H5 build of the mini-program and Debian's Chromium, for the browser
tests in this package (one module: the suite runs under ``--dist loadfile``).

- ``platform``: ``python -m wangban up`` on free ports and a fresh data directory, as
  ``tests/platform/test_up.py`` starts it (demo data seeded), until every service's ``/readyz``
  answers; SIGTERM to its process group at teardown.
- ``h5_dist``: ``miniprogram/dist`` built with an empty ``TARO_APP_API_BASE`` (same origin) when
  it is missing, older than the sources or built for another API base.
- ``client_url``: ``scripts/serve-h5.mjs`` serving that build, ``/api`` passed to the gateway.
- ``browser``: headless ``/usr/bin/chromium`` through Playwright's async API (the suite's
  event loop is pytest-asyncio's; never a downloaded browser).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Playwright, async_playwright

from wangban.embedded import free_port
from wangban.settings import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
MINIPROGRAM = ROOT / "miniprogram"
DIST = MINIPROGRAM / "dist" / "h5"  # config/index.ts: outputRoot dist/<TARO_ENV>
CHROMIUM = "/usr/bin/chromium"
DEFAULT_API_BASE = "http://127.0.0.1:8000"
"""What a build without ``TARO_APP_API_BASE`` calls (config/index.ts): not the test's gateway."""

PLATFORM_READY_S = 240.0
CLIENT_READY_S = 30.0
BUILD_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Platform:
    ports: dict[str, int]
    data_dir: Path

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"


def _stop_group(process: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """SIGTERM the process group ``process`` leads, wait, and SIGKILL it if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # Whatever the leader left behind in its group (it is gone by now).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 60) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    base = tmp_path_factory.mktemp("platform")
    data_dir = base / "wangban-data"
    ports = {name: free_port() for name in SERVICE_NAMES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")}
    env.update({f"WANGBAN_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env["WANGBAN_EMBEDDED_KAFKA_PORT"] = str(free_port())
    env["WANGBAN_DATA_DIR"] = str(data_dir)
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
        _stop_group(up, timeout_s=90)


def _wait_ready(up: subprocess.Popen[bytes], ports: dict[str, int], log: Path) -> None:
    ready: set[str] = set()
    deadline = time.monotonic() + PLATFORM_READY_S
    with httpx.Client(timeout=3) as client:
        while ready != set(ports):
            if up.poll() is not None:
                raise AssertionError(f"wangban up exited early:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not ready after {PLATFORM_READY_S:.0f} s: {sorted(set(ports) - ready)}"
                    f"\n{_tail(log)}"
                )
            for name, port in ports.items():
                if name not in ready:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                            ready.add(name)
            time.sleep(0.5)


def _newest_source_mtime() -> float:
    sources = [MINIPROGRAM / "src", MINIPROGRAM / "config"]
    files = [p for d in sources for p in d.rglob("*") if p.is_file()]
    files += [MINIPROGRAM / "package.json", MINIPROGRAM / "package-lock.json"]
    return max(p.stat().st_mtime for p in files if p.exists())


def _built_for_same_origin() -> bool:
    """A build for the default API base names it in its scripts; ours (empty base) does not."""
    return not any(DEFAULT_API_BASE in p.read_text(errors="replace") for p in DIST.rglob("*.js"))


def h5_build_is_current() -> bool:
    index = DIST / "index.html"
    return (
        index.exists()
        and index.stat().st_mtime >= _newest_source_mtime()
        and _built_for_same_origin()
    )


def _wait_for_other_builds() -> None:
    """Another ``taro build`` writes the same dist/: wait until none runs."""
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while subprocess.run(["pgrep", "-f", "taro build"], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            raise AssertionError("another taro build is still running")
        time.sleep(2)


@pytest.fixture(scope="session")
def h5_dist() -> Path:
    if not (MINIPROGRAM / "node_modules").is_dir():
        raise AssertionError("miniprogram/node_modules is missing: run npm ci in miniprogram")
    _wait_for_other_builds()
    if not h5_build_is_current():
        npm = shutil.which("npm")
        assert npm, "npm is not installed"
        built = subprocess.run(
            [npm, "run", "build:h5"],
            cwd=MINIPROGRAM,
            env={**os.environ, "TARO_APP_API_BASE": ""},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        assert built.returncode == 0, (
            f"npm run build:h5 failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
        )
    assert (DIST / "index.html").exists()
    assert _built_for_same_origin(), "dist/ calls the default gateway, not the same origin"
    return DIST


@pytest.fixture(scope="session")
def client_url(
    platform: Platform, h5_dist: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    node = shutil.which("node")
    assert node, "node is not installed"
    port = free_port()
    log = tmp_path_factory.mktemp("client") / "serve-h5.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                node,
                str(MINIPROGRAM / "scripts" / "serve-h5.mjs"),
                "--port",
                str(port),
                "--gateway",
                platform.gateway,
                "--dir",
                str(h5_dist),
            ],
            cwd=MINIPROGRAM,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + CLIENT_READY_S
        with httpx.Client(timeout=3) as client:
            while True:
                if server.poll() is not None:
                    raise AssertionError(f"serve-h5.mjs exited:\n{_tail(log)}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{url}/api/v1/items", params={"q": "户口"}).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"serve-h5.mjs not answering:\n{_tail(log)}")
                time.sleep(0.3)
        yield url
    finally:
        _stop_group(server, timeout_s=10)


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
