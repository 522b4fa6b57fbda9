"""What a citizen gets through the gateway when WeChat refuses a login (issue 18, defect 5).

A login code from ``wx.login`` is good once: a reused one is answered by WeChat with 40163
("code been used", the fake answers it as WeChat does) and must be a 401 asking the client to
call ``wx.login`` again, not a 503 "微信登录暂时不可用". Each errcode class has its answer: the
client's fault 401, risk control 403, the per-user limit 429, our own configuration 503 with an
ERROR for operations, an outage 503."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.wechat import LOGIN_ERRCODES
from tests.fakes.wechat import FakeWeChat, serve_fake_wechat
from tests.gateway.support import Gateway, running_gateway
from tests.infrastructure import Infrastructure
from wangban.db import Database
from wangban.wechat import COMMON_ERRCODES, Fault

APPID = "wx-login-errors"
SECRET = "login-errors-secret-9f2c"
PROBLEM = "application/problem+json"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with serve_fake_wechat(appid=APPID, secret=SECRET) as running:
        yield running


@pytest.fixture
async def gateway(
    infrastructure: Infrastructure, database: Database, fake: FakeWeChat
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        infrastructure,
        database,
        wechat_api_base=fake.base_url,
        wechat_appid=APPID,
        wechat_app_secret=SECRET,
    ) as running:
        yield running


def _code(fake: FakeWeChat) -> str:
    code = f"code-{uuid.uuid4().hex[:10]}"
    fake.login_codes[code] = (f"o-{uuid.uuid4().hex}", None)
    return code


async def test_a_reused_login_code_asks_the_client_to_call_wx_login_again(
    gateway: Gateway, fake: FakeWeChat
) -> None:
    code = _code(fake)
    first = await gateway.client.post("/api/v1/auth/wechat", json={"code": code})
    assert first.status_code == 200, first.text

    again = await gateway.client.post("/api/v1/auth/wechat", json={"code": code})
    assert fake.login_calls[-1]["js_code"] == code  # WeChat was asked, and said 40163
    assert again.status_code == 401, again.text
    assert again.headers["content-type"] == PROBLEM
    problem = again.json()
    assert problem["type"].endswith(":invalid-login-code")
    assert "wx.login" in problem["detail"] and "重新登录" in problem["detail"]
    assert problem["instance"] == "/api/v1/auth/wechat"


async def test_the_per_user_limit_is_429_with_retry_after(
    gateway: Gateway, fake: FakeWeChat
) -> None:
    fake.login_errcode = 45011
    answer = await gateway.client.post("/api/v1/auth/wechat", json={"code": _code(fake)})
    assert answer.status_code == 429, answer.text
    assert answer.json()["type"].endswith(":wechat-login-rate-limited")
    assert answer.headers["retry-after"] == "60"


async def test_each_class_of_errcode_has_its_answer(gateway: Gateway, fake: FakeWeChat) -> None:
    expected = {
        40029: (401, "invalid-login-code"),
        41008: (401, "invalid-login-code"),
        40226: (403, "wechat-high-risk-user"),
        -1: (503, "wechat-busy"),
        45009: (503, "wechat-unavailable"),
        40164: (503, "wechat-unavailable"),
        48001: (503, "wechat-unavailable"),
        99999: (503, "wechat-unavailable"),  # one nobody documented: an outage
    }
    answered = {}
    for errcode in expected:
        fake.login_errcode = errcode
        answer = await gateway.client.post("/api/v1/auth/wechat", json={"code": _code(fake)})
        assert any("\u4e00" <= ch <= "\u9fff" for ch in answer.json()["detail"]), answer.text
        answered[errcode] = (answer.status_code, answer.json()["type"].rsplit(":", 1)[-1])
    assert answered == expected


async def test_our_wrong_secret_is_503_and_an_error_for_operations_not_the_citizen(
    infrastructure: Infrastructure,
    database: Database,
    fake: FakeWeChat,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running_gateway(
        infrastructure,
        database,
        wechat_api_base=fake.base_url,
        wechat_appid=APPID,
        wechat_app_secret="not-the-secret-of-this-app",
    ) as gateway:
        code = _code(fake)
        answer = await gateway.client.post("/api/v1/auth/wechat", json={"code": code})
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"].endswith(":wechat-unavailable")
    assert "retry-after" in answer.headers
    errors = [
        r for r in caplog.records if r.name == "gateway.wechat" and r.levelno >= logging.ERROR
    ]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "40125" in message and "WANGBAN_WECHAT_APP_SECRET" in message
    assert "not-the-secret-of-this-app" not in message and code not in message


def test_every_errcode_of_the_table_is_classified_and_answered() -> None:
    # The shared errcodes all reach the login table, and each class keeps its status family.
    assert set(COMMON_ERRCODES) <= set(LOGIN_ERRCODES)
    expected = {
        Fault.CLIENT: 401,
        Fault.REFUSED: 403,
        Fault.RATE_LIMITED: 429,
        Fault.CONFIG: 503,
        Fault.OUTAGE: 503,
    }
    for errcode, refusal in LOGIN_ERRCODES.items():
        assert refusal.problem.status == expected[refusal.fault], errcode
    assert LOGIN_ERRCODES[40163].fault is Fault.CLIENT
