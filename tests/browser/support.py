"""What the browser tests of both clients share: the repository's places, the platform's
ports, process handling, building a client, and the accessibility check with a screenshot."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, ViewportSize

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
CHROMIUM = "/usr/bin/chromium"

PLATFORM_READY_S = 240.0
BUILD_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Platform:
    ports: dict[str, int]
    data_dir: Path

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"


@dataclass(frozen=True)
class Desk:
    """Where the staff console is and the password of every demo staff login."""

    url: str
    password: str


def stop_group(process: subprocess.Popen[bytes], *, timeout_s: float) -> None:
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


def tail(path: Path, lines: int = 60) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def newest_mtime(paths: list[Path]) -> float:
    files = [f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()]
    return max(f.stat().st_mtime for f in files)


def wait_for_other_builds(pattern: str) -> None:
    """Another build writes the same dist/: wait until none runs."""
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"another build ({pattern}) is still running")
        time.sleep(2)


def npm_run(directory: Path, script: str, env: dict[str, str] | None = None) -> None:
    npm = shutil.which("npm")
    assert npm, "npm is not installed"
    if not (directory / "node_modules").is_dir():
        raise AssertionError(f"{directory.name}/node_modules is missing: run npm ci there")
    built = subprocess.run(
        [npm, "run", script],
        cwd=directory,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    output = f"{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    assert built.returncode == 0, f"npm run {script} in {directory.name} failed:\n{output}"


BLOCKING_IMPACTS = ("serious", "critical")


@dataclass
class ScreenCheck:
    """axe-core and a screenshot for each screen visited (copied into ``docs_directory`` when
    ``save_to_docs``); a summary for the report."""

    directory: Path
    docs_directory: Path
    save_to_docs: bool
    results: dict[str, list[str]] = field(default_factory=dict)

    async def __call__(self, page: Page, screen: str, *, care: bool = False) -> None:
        name = f"{screen}-care" if care else screen
        blocking = await blocking_violations(page)
        self.results[name] = [f"{v['rule']} ({v['impact']}) {v['target']}" for v in blocking]
        (self.directory / f"{name}.axe.json").write_text(
            json.dumps(blocking, ensure_ascii=False, indent=2)
        )
        picture = self.directory / f"{name}.png"
        await page.screenshot(path=str(picture))
        if self.save_to_docs:
            self.docs_directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(picture, self.docs_directory / picture.name)
        assert not blocking, f"axe on {name}: serious or critical violations\n" + "\n".join(
            f"  {v['rule']} ({v['impact']}) {v['target']}: {v['html']}" for v in blocking
        )

    def write_summary(self) -> None:
        (self.directory / "axe-summary.json").write_text(
            json.dumps(self.results, ensure_ascii=False, indent=2)
        )


async def blocking_violations(page: Page) -> list[dict[str, str]]:
    response: dict[str, Any] = (await Axe().run(page)).response
    found: list[dict[str, str]] = []
    for violation in response["violations"]:
        if violation.get("impact") not in BLOCKING_IMPACTS:
            continue
        for node in violation["nodes"]:
            found.append(
                {
                    "rule": violation["id"],
                    "impact": str(violation.get("impact")),
                    "target": " ".join(str(t) for t in node["target"]),
                    "html": str(node.get("html", ""))[:200],
                }
            )
    return found


def saving_screenshots() -> bool:
    return os.environ.get("WANGBAN_SAVE_SCREENSHOTS") == "1"


def screen_checks(directory: Path, docs_directory: Path) -> Iterator[ScreenCheck]:
    """A module's screen check (``yield from`` in its fixture), its summary written after."""
    check = ScreenCheck(
        directory=directory, docs_directory=docs_directory, save_to_docs=saving_screenshots()
    )
    yield check
    check.write_summary()


@asynccontextmanager
async def opened_page(
    browser: Browser, *, base_url: str, viewport: ViewportSize, wait_ms: int, touch: bool = False
) -> AsyncIterator[Page]:
    """A page in a fresh browser context (no cookies or storage of another test), Chinese."""
    context = await browser.new_context(
        base_url=base_url, viewport=viewport, has_touch=touch, locale="zh-CN"
    )
    context.set_default_timeout(wait_ms)
    try:
        yield await context.new_page()
    finally:
        await context.close()
