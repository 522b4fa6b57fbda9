"""The mini-program's H5 build, served for the browser tests of this package:

- ``h5_dist``: ``miniprogram/dist`` built with an empty ``TARO_APP_API_BASE`` (same origin) when
  it is missing, older than the sources or built for another API base.
- ``client_url``: ``scripts/serve-h5.mjs`` serving that build, ``/api`` passed to the gateway.

The platform and the browser come from ``tests/browser/conftest.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.support import (
    ROOT,
    Platform,
    newest_mtime,
    npm_run,
    stop_group,
    tail,
    wait_for_other_builds,
)
from wangban.embedded import free_port

MINIPROGRAM = ROOT / "miniprogram"
DIST = MINIPROGRAM / "dist" / "h5"  # config/index.ts: outputRoot dist/<TARO_ENV>
DEFAULT_API_BASE = "http://127.0.0.1:8000"
"""What a build without ``TARO_APP_API_BASE`` calls (config/index.ts): not the test's gateway."""

CLIENT_READY_S = 30.0


def _newest_source_mtime() -> float:
    return newest_mtime(
        [
            MINIPROGRAM / "src",
            MINIPROGRAM / "config",
            MINIPROGRAM / "package.json",
            MINIPROGRAM / "package-lock.json",
        ]
    )


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


@pytest.fixture(scope="session")
def h5_dist() -> Path:
    wait_for_other_builds("taro build")
    if not h5_build_is_current():
        npm_run(MINIPROGRAM, "build:h5", env={"TARO_APP_API_BASE": ""})
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
                    raise AssertionError(f"serve-h5.mjs exited:\n{tail(log)}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{url}/api/v1/items", params={"q": "户口"}).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"serve-h5.mjs not answering:\n{tail(log)}")
                time.sleep(0.3)
        yield url
    finally:
        stop_group(server, timeout_s=10)
