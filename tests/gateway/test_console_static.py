"""The gateway serves the staff console's built files at /console/: the console's routes get its
page, assets are kept, nothing outside the directory is reachable, and the API keeps its own
strict headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.console import CONSOLE_POLICY
from wangban.app import create_service_app
from wangban.services import load_spec
from wangban.settings import Environment, Settings

PAGE = "<!doctype html><html lang='zh-CN'><title>工作台</title></html>"
SCRIPT = "console.log('工作台')"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    built = tmp_path / "dist"
    (built / "assets").mkdir(parents=True)
    (built / "index.html").write_text(PAGE, encoding="utf-8")
    (built / "assets" / "index-3f2a.js").write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "secret.txt").write_text("不应被读到", encoding="utf-8")
    settings = Settings(env=Environment.TEST, gateway_console_dir=built)
    app = create_service_app(load_spec("gateway"), settings, background=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


async def test_the_console_is_served_at_its_prefix(client: httpx.AsyncClient) -> None:
    moved = await client.get("/console")
    assert moved.status_code == 308 and moved.headers["location"] == "/console/"

    page = await client.get("/console/")
    assert page.status_code == 200 and page.text == PAGE
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONSOLE_POLICY
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["x-frame-options"] == "DENY"

    # A route of the console itself (a single-page app) is its page.
    deep = await client.get("/console/review/cases/42")
    assert deep.status_code == 200 and deep.text == PAGE

    script = await client.get("/console/assets/index-3f2a.js")
    assert script.status_code == 200 and script.text == SCRIPT
    assert "javascript" in script.headers["content-type"]
    assert "immutable" in script.headers["cache-control"]


async def test_nothing_outside_the_directory_is_reachable(client: httpx.AsyncClient) -> None:
    for path in (
        "/console/../secret.txt",
        "/console/%2e%2e/secret.txt",
        "/console/..%2fsecret.txt",
    ):
        answer = await client.get(path)
        assert "不应被读到" not in answer.text, path


async def test_the_api_keeps_its_own_policy(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/items/no-such-item")
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.headers["cache-control"] == "no-store"
