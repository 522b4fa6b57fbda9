"""The gateway tells notify which WeChat openid an account logged in with by calling notify's
``PUT /internal/recipients/{subject}/wechat`` after the login (no event, no broker: the
services here run HTTP only). A notify that cannot be reached does not fail the login: the
failure is counted, and the next login binds the openid."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.upstream import Upstreams
from notify_service.models import Recipient
from tests.fakes.wechat import FakeWeChat, serve_fake_wechat
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure, make_settings
from wangban.db import Database
from wangban.embedded import free_port

APPID = "wx0d4c3b2a19f8e7d6"
SECRET = "openid-report-secret-5b7c"


@pytest.fixture(scope="module")
async def wechat() -> AsyncIterator[FakeWeChat]:
    async with serve_fake_wechat(appid=APPID, secret=SECRET) as fake:
        yield fake


@pytest.fixture(scope="module")
async def gateway(
    infrastructure: Infrastructure, database: Database, wechat: FakeWeChat
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        infrastructure,
        database,
        wechat_api_base=wechat.base_url,
        wechat_appid=APPID,
        wechat_app_secret=SECRET,
    ) as gw:
        yield gw


async def _login(gateway: Gateway, wechat: FakeWeChat, openid: str) -> str:
    code = f"code-{uuid.uuid4().hex}"
    wechat.login_codes[code] = (openid, None)
    answer = await gateway.client.post("/api/v1/auth/wechat", json={"code": code})
    assert answer.status_code == 200, answer.text
    me = await gateway.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {answer.json()['access_token']}"}
    )
    return str(me.json()["subject"])


async def _bound_openid(database: Database, subject: str) -> str | None:
    async with database.sessionmaker() as session:
        recipient = await session.get(Recipient, subject)
        return None if recipient is None else recipient.openid


def _reports(gateway: Gateway, outcome: str) -> float:
    value = gateway.app.state.metrics.registry.get_sample_value(
        "wangban_gateway_wechat_binding_reports_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_a_wechat_login_binds_the_openid_in_notify(
    gateway: Gateway, wechat: FakeWeChat, database: Database
) -> None:
    bound_before = _reports(gateway, "bound")
    openid = f"o-report-{uuid.uuid4().hex[:8]}"
    subject = await _login(gateway, wechat, openid)
    # No relay or consumer runs here: only the gateway's call can have put it there.
    assert gateway.app.state.runtime is None or gateway.app.state.runtime.relay is None
    assert await _bound_openid(database, subject) == openid
    assert _reports(gateway, "bound") == bound_before + 1
    # Every login reports again (idempotent in notify).
    assert await _login(gateway, wechat, openid) == subject
    assert await _bound_openid(database, subject) == openid


async def test_the_development_login_binds_the_openid_too(
    gateway: Gateway, database: Database
) -> None:
    openid = f"o-dev-{uuid.uuid4().hex[:8]}"
    answer = await gateway.client.post("/api/v1/auth/dev", json={"openid": openid})
    assert answer.status_code == 200, answer.text
    me = await gateway.client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {answer.json()['access_token']}"}
    )
    assert await _bound_openid(database, me.json()["subject"]) == openid


async def test_notify_unreachable_does_not_fail_the_login_and_the_next_login_binds(
    gateway: Gateway, wechat: FakeWeChat, database: Database, infrastructure: Infrastructure
) -> None:
    working: Upstreams = gateway.app.state.upstreams
    # Notify at an address nobody listens on (the other services as before).
    unreachable = Upstreams(
        make_settings(infrastructure, notify_url=f"http://127.0.0.1:{free_port()}"),
        transports={
            name: httpx.ASGITransport(app=app)
            for name, app in gateway.services.items()
            if name != "notify"
        },
    )
    failed_before = _reports(gateway, "failed")
    openid = f"o-later-{uuid.uuid4().hex[:8]}"
    gateway.app.state.upstreams = unreachable
    try:
        subject = await _login(gateway, wechat, openid)  # 200 all the same
    finally:
        gateway.app.state.upstreams = working
        await unreachable.close()
    assert _reports(gateway, "failed") == failed_before + 1
    assert await _bound_openid(database, subject) is None

    assert await _login(gateway, wechat, openid) == subject
    assert await _bound_openid(database, subject) == openid
