"""SMS through an HTTP SMS gateway speaking ``docs/sms-gateway-protocol.md``.

The gateway takes a message for a registered template (模板) under a registered signature
(签名) and answers at once whether it *accepted* it; whether the phone got it comes later as a
signed delivery receipt (回执) POSTed to our callback. So a successful send here is
``accepted``, never ``delivered``: :func:`verify_receipt_signature` and :class:`SmsReceipt`
are for the callback that finishes the story.

Requests and receipts are signed the same way: HMAC-SHA256 with the access-key secret over
``<X-Sms-Timestamp>\\n<raw body>``, sent as ``Authorization: Bearer <access_key_id>:<hex>``.

Privacy: the phone number travels only in the body; it never appears in a
:class:`~notify_service.channels.SendResult` or in our logs (we log ``out_id`` and codes).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Final, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from notify_service.channels import SendResult
from wangban.http import external_client

__all__ = [
    "MAX_CLOCK_SKEW_S",
    "TIMESTAMP_HEADER",
    "SmsGatewayClient",
    "SmsReceipt",
    "sign_sms_message",
    "verify_receipt_signature",
]

logger = logging.getLogger(__name__)

TIMESTAMP_HEADER: Final = "X-Sms-Timestamp"
MAX_CLOCK_SKEW_S: Final = 300
"""A signed request or receipt older or newer than this is refused: it bounds how long a
captured message can be replayed."""

_TEMPORARY: Final = {
    "isv.BUSINESS_LIMIT_CONTROL": "该号码短信发送频率超过网关限制，请稍后重试",
    "isv.THROTTLED": "短信网关限流，请稍后重试",
    "isp.SYSTEM_ERROR": "短信网关系统错误，请稍后重试",
}
_PERMANENT: Final = {
    "isv.MOBILE_NUMBER_ILLEGAL": "手机号码不合法，无法接收短信",
    "isv.TEMPLATE_MISSING": "短信模板不存在或未通过审核",
    "isv.SMS_SIGNATURE_ILLEGAL": "短信签名不存在或未通过审核",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "短信模板参数不合法",
    "isv.AMOUNT_NOT_ENOUGH": "短信账户余额不足，请联系管理员充值",
}
# The gateway's message for TEMPLATE_PARAMS_ILLEGAL may name the parameter ("template param
# 'code' is illegal", "参数 code 超长"); we take the name only if it is one we sent.
_PARAM_IN_MESSAGE: Final = re.compile(
    r"(?:param(?:eter)?|参数)\s*[:：=]?\s*[\"'“‘`]?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE
)
_MAX_MESSAGE: Final = 200


def sign_sms_message(*, body: bytes, timestamp: str, secret: str) -> str:
    """The protocol's signature: lower-case hex HMAC-SHA256 of ``timestamp + "\\n" + body``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def verify_receipt_signature(
    *, body: bytes, timestamp: str, authorization: str, access_key_id: str, secret: str
) -> bool:
    """Whether a delivery receipt really comes from the gateway: the ``Authorization`` header
    names our access key and carries the signature of this exact body and timestamp, and the
    timestamp is within :data:`MAX_CLOCK_SKEW_S` of now. Comparisons are constant-time."""
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        return False
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_S:
        return False
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    key_id, separator, signature = credential.strip().partition(":")
    if not separator:
        return False
    expected = sign_sms_message(body=body, timestamp=timestamp, secret=secret)
    # Both comparisons run whatever the first says, so timing tells nothing about which failed.
    key_ok = hmac.compare_digest(key_id.encode(), access_key_id.encode())
    signature_ok = hmac.compare_digest(signature.lower().encode(), expected.encode())
    return key_ok & signature_ok


class SmsReceipt(BaseModel):
    """A delivery receipt the gateway POSTs to our callback (after its signature checked)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    biz_id: str = Field(min_length=1)
    """The gateway's id for the send: the ``provider_ref`` of the accepted SendResult."""
    out_id: str = Field(min_length=1)
    """Our message id as sent."""
    phone_number: str = Field(repr=False)
    status: Literal["DELIVERED", "FAILED"]
    err_code: str | None = None
    """The carrier's status code (``DELIVRD`` when delivered, e.g. ``MK:0001`` when not)."""
    report_time: AwareDatetime
    """When the carrier reported, with an offset."""


class SmsGatewayClient:
    """:class:`~notify_service.channels.SmsChannel` for the gateway protocol.

    ``timeout_s`` bounds each send as a whole. ``clock`` (Unix seconds) stamps the signature;
    tests pass an old one to play a skewed clock.
    """

    def __init__(
        self,
        *,
        base_url: str,
        access_key_id: str,
        access_key_secret: str | SecretStr,
        sign_name: str,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("base_url must be an http(s) URL")
        secret = (
            access_key_secret
            if isinstance(access_key_secret, SecretStr)
            else SecretStr(access_key_secret)
        )
        if not access_key_id.strip() or not secret.get_secret_value().strip():
            raise ValueError("access_key_id and access_key_secret must not be empty")
        if not sign_name.strip():
            raise ValueError("sign_name must not be empty")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.base_url = base_url.rstrip("/")
        self.access_key_id = access_key_id
        self.sign_name = sign_name
        self.timeout_s = timeout_s
        self._secret = secret
        self._clock = clock
        # No proxy from the environment and no redirects: a signed request goes exactly where
        # configured; and no call while a transaction of ours is open.
        self._client = external_client(
            caller="notify",
            system="sms gateway",
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"SmsGatewayClient(base_url={self.base_url!r}, access_key_id={self.access_key_id!r})"

    async def close(self) -> None:
        await self._client.aclose()

    async def send_sms(
        self, *, phone: str, template_code: str, params: dict[str, str], out_id: str
    ) -> SendResult:
        payload = json.dumps(
            {
                "sign_name": self.sign_name,
                "template_code": template_code,
                "phone_number": phone,
                "template_param": params,
                "out_id": out_id,
            },
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(self._clock()))
        signature = sign_sms_message(
            body=payload, timestamp=timestamp, secret=self._secret.get_secret_value()
        )
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            "Authorization": f"Bearer {self.access_key_id}:{signature}",
        }
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._client.post(
                    f"{self.base_url}/sms/send", content=payload, headers=headers
                )
        except (TimeoutError, httpx.TimeoutException):
            logger.warning("sms %s: gateway timed out after %gs", out_id, self.timeout_s)
            return _technical(f"请求短信网关超时（{self.timeout_s:g} 秒）")
        except httpx.HTTPError as exc:
            logger.warning("sms %s: gateway unreachable: %s", out_id, type(exc).__name__)
            return _technical(f"无法连接短信网关（{type(exc).__name__}）")
        result = _interpret(response.status_code, response.content, phone=phone, params=params)
        if result.outcome == "accepted":
            logger.info("sms %s accepted as %s", out_id, result.provider_ref)
        else:
            logger.warning(
                "sms %s: %s (HTTP %s, code %s)",
                out_id,
                result.outcome,
                response.status_code,
                result.code,
            )
        return result


def _interpret(status: int, content: bytes, *, phone: str, params: dict[str, str]) -> SendResult:
    if status in (401, 403):
        # Our key is wrong, disabled or lacks rights: no retry will fix that, staff must.
        return SendResult(
            outcome="permanent-failure",
            code=_code_of(content) or f"HTTP {status}",
            detail=f"短信网关拒绝了访问凭证（HTTP {status}），请检查 AccessKey 配置",
        )
    if status >= 500:
        return _technical(f"短信网关返回 HTTP {status}")
    try:
        answer: Any = json.loads(content)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("code"), str):
        return _technical(f"短信网关的应答无法识别（HTTP {status}）")
    code: str = answer["code"]
    message = _scrub(answer.get("message"), phone)
    if code == "OK":
        biz_id = answer.get("biz_id")
        if status != 200 or not isinstance(biz_id, str) or not biz_id:
            return _technical(f"短信网关的成功应答缺少 biz_id（HTTP {status}）")
        return SendResult(outcome="accepted", provider_ref=biz_id)
    if code in _TEMPORARY:
        return SendResult(outcome="temporary-failure", code=code, detail=_TEMPORARY[code])
    if code == "isv.TEMPLATE_PARAMS_ILLEGAL":
        field = _named_param(message, params)
        detail = _PERMANENT[code] + (f"：参数 {field}" if field else "")
        return SendResult(outcome="permanent-failure", code=code, detail=detail, field=field)
    if code in _PERMANENT:
        return SendResult(outcome="permanent-failure", code=code, detail=_PERMANENT[code])
    # Codes we have no entry for: "isp." is the gateway's side (worth another try), anything
    # else is about our request, which will not get better by repeating it.
    outcome: Literal["temporary-failure", "permanent-failure"] = (
        "temporary-failure" if code.startswith("isp.") else "permanent-failure"
    )
    return SendResult(
        outcome=outcome,
        code=code,
        detail=f"短信网关拒绝发送（{code}）" + (f"：{message}" if message else ""),
    )


def _technical(detail: str) -> SendResult:
    return SendResult(outcome="technical-failure", detail=detail)


def _code_of(content: bytes) -> str | None:
    try:
        answer = json.loads(content)
    except ValueError:
        return None
    code = answer.get("code") if isinstance(answer, dict) else None
    return code if isinstance(code, str) and code else None


def _named_param(message: str, params: dict[str, str]) -> str | None:
    for match in _PARAM_IN_MESSAGE.finditer(message):
        if match.group(1) in params:
            return match.group(1)
    return None


def _scrub(message: object, phone: str) -> str:
    """The gateway's message, fit for staff: shortened, and without the number should the
    gateway echo it."""
    if not isinstance(message, str):
        return ""
    text = message.replace(phone, "***") if phone else message
    return text[:_MAX_MESSAGE]
