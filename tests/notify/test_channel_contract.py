"""One contract, two implementations per channel: the test-mode channel and the HTTP client
talking to a local fake of the provider over real sockets. Whatever the delivery rules rely on
must hold for both, so test mode cannot drift from production.

The fakes are configured to answer the simulated channels' magic recipients the way the
simulated channels do, so each test runs unchanged against both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from notify_service.channels import SmsChannel, WeChatChannel
from notify_service.simulated import (
    NO_CONSENT_OPENID,
    PERMANENT_FAILURE_OPENID,
    PERMANENT_FAILURE_PHONE,
    TEMPORARY_FAILURE_PHONE,
    SimulatedSms,
    SimulatedWeChat,
)
from notify_service.sms import SmsGatewayClient
from notify_service.wechat import WeChatClient
from tests.fakes.sms import serve_fake_sms
from tests.fakes.wechat import serve_fake_wechat
from wangban.wechat import MemoryTokenStore

APPID = "wx0123456789abcdef"
APP_SECRET = "contract-app-secret-0f3c"
KEY_ID = "LTAI-contract"
KEY_SECRET = "contract-key-secret-9a1b"
SIGN_NAME = "网办测试"
OPENID = "oAbC1-contract-openid-XyZ"
PHONE = "13912345678"


@dataclass
class Sent:
    """What the provider saw, in the channel interface's own terms."""

    recipient: str
    template: str
    page: str | None
    values: dict[str, str]
    extra: dict[str, Any]


@dataclass
class WeChatUnderTest:
    channel: WeChatChannel
    sent: Callable[[], list[Sent]]


@dataclass
class SmsUnderTest:
    channel: SmsChannel
    sent: Callable[[], list[Sent]]


@pytest.fixture(params=["simulated", "http"])
async def wechat(request: pytest.FixtureRequest) -> AsyncIterator[WeChatUnderTest]:
    if request.param == "simulated":
        simulated = SimulatedWeChat()
        yield WeChatUnderTest(
            simulated,
            lambda: [
                Sent(
                    m.openid,
                    m.template_id,
                    m.page,
                    m.data,
                    {"miniprogram_state": m.miniprogram_state, "lang": m.lang},
                )
                for m in simulated.sent
            ],
        )
        await simulated.close()
        return
    async with serve_fake_wechat(appid=APPID, secret=APP_SECRET) as fake:
        fake.openid_errors = {NO_CONSENT_OPENID: 43101, PERMANENT_FAILURE_OPENID: 40003}
        client = WeChatClient(
            base_url=fake.base_url,
            appid=APPID,
            secret=APP_SECRET,
            token_store=MemoryTokenStore(),
            timeout_s=5.0,
        )
        try:
            yield WeChatUnderTest(
                client,
                lambda: [
                    Sent(
                        b["touser"],
                        b["template_id"],
                        b.get("page"),
                        {k: v["value"] for k, v in b["data"].items()},
                        {"miniprogram_state": b["miniprogram_state"], "lang": b["lang"]},
                    )
                    for b in fake.sent
                ],
            )
        finally:
            await client.close()


@pytest.fixture(params=["simulated", "http"])
async def sms(request: pytest.FixtureRequest) -> AsyncIterator[SmsUnderTest]:
    if request.param == "simulated":
        simulated = SimulatedSms()
        yield SmsUnderTest(
            simulated,
            lambda: [
                Sent(m.phone, m.template_code, None, m.params, {"out_id": m.out_id})
                for m in simulated.sent
            ],
        )
        await simulated.close()
        return
    async with serve_fake_sms(access_key_id=KEY_ID, secret=KEY_SECRET, sign_name=SIGN_NAME) as fake:
        fake.phone_errors = {
            TEMPORARY_FAILURE_PHONE: "isv.BUSINESS_LIMIT_CONTROL",
            PERMANENT_FAILURE_PHONE: "isv.MOBILE_NUMBER_ILLEGAL",
        }
        client = SmsGatewayClient(
            base_url=fake.base_url,
            access_key_id=KEY_ID,
            access_key_secret=KEY_SECRET,
            sign_name=SIGN_NAME,
            timeout_s=5.0,
        )
        try:
            yield SmsUnderTest(
                client,
                lambda: [
                    Sent(
                        b["phone_number"],
                        b["template_code"],
                        None,
                        b["template_param"],
                        {"out_id": b["out_id"]},
                    )
                    for b in fake.sent
                ],
            )
        finally:
            await client.close()


# -- WeChat ------------------------------------------------------------------------------

DATA = {"thing1": "营业执照变更登记", "phrase2": "已办结", "time3": "2026-11-23 09:30"}


async def test_wechat_send_is_delivered_with_exactly_the_fields_sent(
    wechat: WeChatUnderTest,
) -> None:
    result = await wechat.channel.send_subscription(
        openid=OPENID,
        template_id="TPL-approval-done",
        page="pages/application/detail?id=42",
        data=DATA,
        miniprogram_state="formal",
        lang="zh_CN",
    )
    assert result.outcome == "delivered"
    assert result.provider_ref
    assert result.code is None and result.detail is None
    assert wechat.sent() == [
        Sent(
            OPENID,
            "TPL-approval-done",
            "pages/application/detail?id=42",
            DATA,
            {"miniprogram_state": "formal", "lang": "zh_CN"},
        )
    ]


async def test_wechat_send_without_page(wechat: WeChatUnderTest) -> None:
    result = await wechat.channel.send_subscription(
        openid=OPENID,
        template_id="TPL-approval-done",
        page=None,
        data=DATA,
        miniprogram_state="trial",
        lang="zh_CN",
    )
    assert result.outcome == "delivered"
    [sent] = wechat.sent()
    assert sent.page is None and sent.extra["miniprogram_state"] == "trial"


async def test_each_delivered_message_has_its_own_ref(wechat: WeChatUnderTest) -> None:
    refs = set()
    for _ in range(3):
        result = await wechat.channel.send_subscription(
            openid=OPENID,
            template_id="TPL",
            page=None,
            data=DATA,
            miniprogram_state="formal",
            lang="zh_CN",
        )
        refs.add(result.provider_ref)
    assert len(refs) == 3 and len(wechat.sent()) == 3


@pytest.mark.parametrize(
    ("openid", "outcome", "code"),
    [
        (NO_CONSENT_OPENID, "no-consent", "43101"),
        (PERMANENT_FAILURE_OPENID, "permanent-failure", "40003"),
    ],
)
async def test_wechat_refusals(
    wechat: WeChatUnderTest, openid: str, outcome: str, code: str
) -> None:
    result = await wechat.channel.send_subscription(
        openid=openid,
        template_id="TPL",
        page=None,
        data=DATA,
        miniprogram_state="formal",
        lang="zh_CN",
    )
    assert (result.outcome, result.code) == (outcome, code)
    assert result.detail and openid not in result.detail
    assert result.provider_ref is None
    assert wechat.sent() == []


# -- SMS ---------------------------------------------------------------------------------

PARAMS = {"name": "张三", "item": "营业执照变更登记", "code": "482913"}


async def test_sms_send_is_accepted_with_exactly_the_fields_sent(sms: SmsUnderTest) -> None:
    result = await sms.channel.send_sms(
        phone=PHONE, template_code="SMS_20261123", params=PARAMS, out_id="msg-0001"
    )
    assert result.outcome == "accepted"
    assert result.provider_ref
    assert result.code is None and result.detail is None
    assert sms.sent() == [Sent(PHONE, "SMS_20261123", None, PARAMS, {"out_id": "msg-0001"})]


async def test_a_repeated_out_id_is_one_sms(sms: SmsUnderTest) -> None:
    first = await sms.channel.send_sms(
        phone=PHONE, template_code="SMS_1", params=PARAMS, out_id="msg-dup"
    )
    again = await sms.channel.send_sms(
        phone=PHONE, template_code="SMS_1", params=PARAMS, out_id="msg-dup"
    )
    other = await sms.channel.send_sms(
        phone=PHONE, template_code="SMS_1", params=PARAMS, out_id="msg-other"
    )
    assert first.outcome == again.outcome == other.outcome == "accepted"
    assert again.provider_ref == first.provider_ref != other.provider_ref
    assert [s.extra["out_id"] for s in sms.sent()] == ["msg-dup", "msg-other"]


async def test_a_refused_send_can_be_tried_again_under_the_same_out_id(
    sms: SmsUnderTest,
) -> None:
    # A refusal sent nothing, so it is not what the out_id is remembered by: after a
    # temporary failure the retry under the same id is a real attempt.
    refused = await sms.channel.send_sms(
        phone=TEMPORARY_FAILURE_PHONE, template_code="SMS_1", params=PARAMS, out_id="msg-retry"
    )
    assert refused.outcome == "temporary-failure"
    accepted = await sms.channel.send_sms(
        phone=PHONE, template_code="SMS_1", params=PARAMS, out_id="msg-retry"
    )
    assert accepted.outcome == "accepted"
    assert len(sms.sent()) == 1


@pytest.mark.parametrize(
    ("phone", "outcome", "code"),
    [
        (TEMPORARY_FAILURE_PHONE, "temporary-failure", "isv.BUSINESS_LIMIT_CONTROL"),
        (PERMANENT_FAILURE_PHONE, "permanent-failure", "isv.MOBILE_NUMBER_ILLEGAL"),
    ],
)
async def test_sms_refusals(sms: SmsUnderTest, phone: str, outcome: str, code: str) -> None:
    result = await sms.channel.send_sms(
        phone=phone, template_code="SMS_1", params=PARAMS, out_id=f"msg-{phone}"
    )
    assert (result.outcome, result.code) == (outcome, code)
    assert result.detail and phone not in result.detail
    assert result.provider_ref is None
    assert sms.sent() == []
