"""SmsGatewayClient against a local fake gateway on 127.0.0.1: request signing (checked by the
gateway), the mapping of every gateway answer, technical failures, and delivery receipts
POSTed by the gateway to a real callback that verifies them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pydantic
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notify_service.channels import SendResult
from notify_service.sms import (
    SmsGatewayClient,
    SmsReceipt,
    sign_sms_message,
    verify_receipt_signature,
)
from tests.fakes.sms import FakeSmsGateway, serve_fake_sms, signed_headers
from tests.serving import serve_asgi
from wangban.embedded import free_port

KEY_ID = "LTAI5t-wangban-test"
KEY_SECRET = "sms-test-secret-3b7c1d"
SIGN_NAME = "网办"
PHONE = "13712345678"
PARAMS = {"name": "李四", "code": "731942"}


@pytest.fixture
async def gateway() -> AsyncIterator[FakeSmsGateway]:
    async with serve_fake_sms(access_key_id=KEY_ID, secret=KEY_SECRET, sign_name=SIGN_NAME) as fake:
        yield fake


@pytest.fixture
async def make_client(
    gateway: FakeSmsGateway,
) -> AsyncIterator[Callable[..., SmsGatewayClient]]:
    made: list[SmsGatewayClient] = []

    def make(**overrides: object) -> SmsGatewayClient:
        options: dict[str, object] = {
            "base_url": gateway.base_url,
            "access_key_id": KEY_ID,
            "access_key_secret": KEY_SECRET,
            "sign_name": SIGN_NAME,
            "timeout_s": 5.0,
        }
        options.update(overrides)
        client = SmsGatewayClient(**options)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def client(make_client: Callable[..., SmsGatewayClient]) -> SmsGatewayClient:
    return make_client()


async def send(client: SmsGatewayClient, out_id: str = "msg-1", phone: str = PHONE) -> SendResult:
    return await client.send_sms(phone=phone, template_code="SMS_1", params=PARAMS, out_id=out_id)


# -- signing -----------------------------------------------------------------------------


async def test_a_signed_send_is_accepted(gateway: FakeSmsGateway, client: SmsGatewayClient) -> None:
    result = await send(client)
    assert result.outcome == "accepted"
    assert result.provider_ref == gateway.biz_ids["msg-1"]
    assert gateway.sent == [
        {
            "sign_name": SIGN_NAME,
            "template_code": "SMS_1",
            "phone_number": PHONE,
            "template_param": PARAMS,
            "out_id": "msg-1",
        }
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        {"access_key_secret": "not-the-secret"},
        {"access_key_id": "LTAI-someone-else"},
        {"clock": lambda: time.time() - 3600},  # a clock an hour slow: stale signature
    ],
    ids=["wrong-secret", "wrong-key-id", "skewed-clock"],
)
async def test_a_request_the_gateway_cannot_authenticate_is_permanent(
    gateway: FakeSmsGateway,
    make_client: Callable[..., SmsGatewayClient],
    overrides: dict[str, object],
) -> None:
    result = await send(make_client(**overrides))
    assert (result.outcome, result.code) == ("permanent-failure", "isv.AUTH_FAILED")
    assert result.detail is not None and "401" in result.detail
    assert gateway.requests_seen == 1 and gateway.sent == []


def test_the_signature_is_the_documented_one() -> None:
    # HMAC-SHA256("secret", "1700000000\n{}"), computed independently of the client.
    headers = signed_headers(b"{}", access_key_id="k", secret="secret", timestamp=1700000000)
    signature = headers["Authorization"].removeprefix("Bearer k:")
    assert sign_sms_message(body=b"{}", timestamp="1700000000", secret="secret") == signature
    assert len(signature) == 64 and signature == signature.lower()


# -- answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", "temporary-failure"),
        ("isv.THROTTLED", "temporary-failure"),
        ("isp.SYSTEM_ERROR", "temporary-failure"),
        ("isv.MOBILE_NUMBER_ILLEGAL", "permanent-failure"),
        ("isv.TEMPLATE_MISSING", "permanent-failure"),
        ("isv.SMS_SIGNATURE_ILLEGAL", "permanent-failure"),
        ("isv.TEMPLATE_PARAMS_ILLEGAL", "permanent-failure"),
        ("isv.AMOUNT_NOT_ENOUGH", "permanent-failure"),
        ("isv.SOMETHING_NEW", "permanent-failure"),  # unknown, about our request
        ("isp.SOMETHING_NEW", "temporary-failure"),  # unknown, on the gateway's side
    ],
)
async def test_gateway_codes(
    gateway: FakeSmsGateway, client: SmsGatewayClient, code: str, outcome: str
) -> None:
    gateway.code = code
    result = await send(client)
    assert (result.outcome, result.code) == (outcome, code)
    assert result.detail and result.provider_ref is None
    assert gateway.sent == []


async def test_the_gateway_checks_what_it_knows(
    gateway: FakeSmsGateway, make_client: Callable[..., SmsGatewayClient]
) -> None:
    gateway.templates = {"SMS_1"}
    client = make_client()
    assert (await send(client, phone="1234")).code == "isv.MOBILE_NUMBER_ILLEGAL"
    unknown = await client.send_sms(phone=PHONE, template_code="SMS_9", params={}, out_id="m-2")
    assert unknown.code == "isv.TEMPLATE_MISSING"
    unsigned = await send(make_client(sign_name="别的签名"), out_id="m-3")
    assert (unsigned.outcome, unsigned.code) == ("permanent-failure", "isv.SMS_SIGNATURE_ILLEGAL")


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("template param 'code' is illegal", "code"),
        ("参数 name 超过长度限制", "name"),
        ("template param 'other' is illegal", None),  # not a param we sent
        ("template_param does not match the template", None),
    ],
)
async def test_an_illegal_param_is_named_when_the_gateway_says_which(
    gateway: FakeSmsGateway, client: SmsGatewayClient, message: str, field: str | None
) -> None:
    gateway.code = "isv.TEMPLATE_PARAMS_ILLEGAL"
    gateway.message = message
    result = await send(client)
    assert (result.outcome, result.field) == ("permanent-failure", field)
    if field is not None:
        assert result.detail is not None and field in result.detail


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_technical(
    gateway: FakeSmsGateway, client: SmsGatewayClient, status: int
) -> None:
    gateway.http_status = status
    result = await send(client)
    assert result.outcome == "technical-failure"
    assert result.detail is not None and str(status) in result.detail


async def test_an_answer_that_is_not_json_is_technical(
    gateway: FakeSmsGateway, client: SmsGatewayClient
) -> None:
    gateway.garbage = True
    assert (await send(client)).outcome == "technical-failure"


async def test_a_slow_gateway_is_technical_and_the_retry_is_not_a_second_sms(
    gateway: FakeSmsGateway, make_client: Callable[..., SmsGatewayClient]
) -> None:
    client = make_client(timeout_s=0.3)
    gateway.delay_s = 10
    result = await send(client, out_id="msg-slow")
    assert result.outcome == "technical-failure"
    assert result.detail is not None and "超时" in result.detail
    gateway.delay_s = 0
    # The retries by a client with the usual timeout: only the first call is meant to time out,
    # however loaded the machine running the test is.
    patient = make_client()
    retried = await send(patient, out_id="msg-slow")
    again = await send(patient, out_id="msg-slow")
    assert retried.outcome == again.outcome == "accepted"
    assert retried.provider_ref == again.provider_ref
    assert len(gateway.sent) == 1


async def test_nobody_listening_is_technical() -> None:
    client = SmsGatewayClient(
        base_url=f"http://127.0.0.1:{free_port()}",
        access_key_id=KEY_ID,
        access_key_secret=KEY_SECRET,
        sign_name=SIGN_NAME,
        timeout_s=2.0,
    )
    try:
        assert (await send(client)).outcome == "technical-failure"
    finally:
        await client.close()


async def test_the_number_appears_in_no_result_or_log(
    gateway: FakeSmsGateway, client: SmsGatewayClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    results = [await send(client, out_id="m-ok")]
    gateway.code = "isv.BLACK_KEY_CONTROL_LIMIT"
    gateway.message = f"number {PHONE} is on the blacklist"  # a gateway echoing the number
    results.append(await send(client, out_id="m-black"))
    gateway.code = "isv.MOBILE_NUMBER_ILLEGAL"
    results.append(await send(client, out_id="m-bad"))
    gateway.code = None
    gateway.http_status = 500
    results.append(await send(client, out_id="m-500"))

    assert [r.outcome for r in results] == [
        "accepted",
        "permanent-failure",
        "permanent-failure",
        "technical-failure",
    ]
    assert results[1].detail is not None and "blacklist" in results[1].detail
    ours = [r for r in caplog.records if not r.name.startswith("uvicorn")]  # not the fake's
    rendered = [caplog.handler.format(record) for record in ours]
    assert any("m-black" in line for line in rendered)  # out_id and code are logged
    for text in [*rendered, *(json.dumps(r.__dict__, ensure_ascii=False) for r in results)]:
        assert PHONE not in text
        assert KEY_SECRET not in text


def test_the_secret_is_not_in_the_repr() -> None:
    client = SmsGatewayClient(
        base_url="https://sms.example.cn",
        access_key_id=KEY_ID,
        access_key_secret=KEY_SECRET,
        sign_name=SIGN_NAME,
    )
    assert KEY_SECRET not in repr(client) and KEY_ID in repr(client)


# -- receipts ----------------------------------------------------------------------------


@dataclass
class Callback:
    """Our receipt endpoint as the service would write it: verify, then parse."""

    url: str = ""
    receipts: list[SmsReceipt] = field(default_factory=list)
    refused: int = 0


@pytest.fixture
async def callback() -> AsyncIterator[Callback]:
    state = Callback()

    async def receive(request: Request) -> Response:
        body = await request.body()
        if not verify_receipt_signature(
            body=body,
            timestamp=request.headers.get("x-sms-timestamp", ""),
            authorization=request.headers.get("authorization", ""),
            access_key_id=KEY_ID,
            secret=KEY_SECRET,
        ):
            state.refused += 1
            return Response(status_code=401)
        state.receipts.append(SmsReceipt.model_validate_json(body))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/sms/receipts", receive, methods=["POST"])])
    async with serve_asgi(app) as base_url:
        state.url = f"{base_url}/sms/receipts"
        yield state


async def test_a_signed_receipt_is_verified_and_read(
    gateway: FakeSmsGateway, client: SmsGatewayClient, callback: Callback
) -> None:
    accepted = await send(client, out_id="msg-r1")
    answer = await gateway.post_receipt(callback.url, out_id="msg-r1")
    assert answer.status_code == 204
    [receipt] = callback.receipts
    assert (receipt.biz_id, receipt.out_id, receipt.status) == (
        accepted.provider_ref,
        "msg-r1",
        "DELIVERED",
    )
    assert receipt.phone_number == PHONE and PHONE not in repr(receipt)
    assert receipt.report_time.tzinfo is not None

    await send(client, out_id="msg-r2")
    assert (await gateway.post_receipt(callback.url, out_id="msg-r2", delivered=False)).is_success
    assert callback.receipts[1].status == "FAILED" and callback.receipts[1].err_code == "MK:0001"


@pytest.mark.parametrize(
    "forgery",
    [
        {"tamper": True},
        {"timestamp_offset": -600},  # replayed ten minutes later
        {"timestamp_offset": 600},  # from a clock far ahead
        {"secret": "someone-elses-secret"},
    ],
    ids=["tampered-body", "old-timestamp", "future-timestamp", "wrong-secret"],
)
async def test_a_forged_or_replayed_receipt_is_refused(
    gateway: FakeSmsGateway,
    client: SmsGatewayClient,
    callback: Callback,
    forgery: dict[str, object],
) -> None:
    await send(client, out_id="msg-f")
    # The timestamp taken when the test runs, not when it was collected (a long suite would
    # otherwise bring a "future" one back within the accepted skew).
    forged = dict(forgery)
    offset = forged.pop("timestamp_offset", None)
    if isinstance(offset, int):
        forged["timestamp"] = int(time.time()) + offset
    answer = await gateway.post_receipt(callback.url, out_id="msg-f", **forged)  # type: ignore[arg-type]
    assert answer.status_code == 401
    assert callback.receipts == [] and callback.refused == 1


def test_receipt_signature_edge_cases() -> None:
    body = b'{"biz_id":"1"}'
    stamp = str(int(time.time()))
    good = signed_headers(body, access_key_id=KEY_ID, secret=KEY_SECRET, timestamp=int(stamp))
    authorization = good["Authorization"]

    def check(**changes: str) -> bool:
        values = {
            "body": body,
            "timestamp": stamp,
            "authorization": authorization,
            "access_key_id": KEY_ID,
            "secret": KEY_SECRET,
            **changes,
        }
        return verify_receipt_signature(**values)  # type: ignore[arg-type]

    assert check()
    assert check(authorization=authorization.replace("Bearer ", "bearer ")) is True
    assert check(access_key_id="LTAI-other") is False
    assert check(authorization=authorization.replace("Bearer ", "Basic ")) is False
    assert check(authorization=authorization.replace(f"{KEY_ID}:", KEY_ID)) is False
    assert check(authorization="") is False
    assert check(timestamp="") is False
    assert check(timestamp=f"{stamp}.0") is False
    assert check(timestamp=str(int(stamp) + 1)) is False  # the stamp is part of what is signed


def test_receipt_model() -> None:
    base = {
        "biz_id": "000001^1700000000000",
        "out_id": "msg-1",
        "phone_number": PHONE,
        "status": "DELIVERED",
        "err_code": "DELIVRD",
        "report_time": "2026-11-23T09:30:00+08:00",
        "something_new": "ignored",
    }
    receipt = SmsReceipt.model_validate(base)
    assert receipt.out_id == "msg-1"
    with pytest.raises(pydantic.ValidationError):
        SmsReceipt.model_validate({**base, "report_time": "2026-11-23T09:30:00"})  # no offset
    with pytest.raises(pydantic.ValidationError):
        SmsReceipt.model_validate({**base, "status": "SENT"})
