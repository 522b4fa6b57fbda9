"""Test-mode channels: the whole notify path runs, nothing leaves the process.

Like GOV.UK Notify's test keys, these stand in for WeChat and the SMS gateway in test mode
(demo machines, staging with real-looking data, the suite). They keep what they "sent" in
memory for inspection (``sent``), answer as the real providers would, and never touch the
network. Recipients' openids and numbers are held only in that in-memory list.

Magic recipients make the failure paths reachable in test mode:

===============================  ==================================================
recipient                        outcome
===============================  ==================================================
openid ``sim-no-consent``        ``no-consent`` (as WeChat's 43101)
openid ``sim-permanent``         ``permanent-failure`` (as WeChat's 40003)
phone ``13800000003``            ``temporary-failure`` (as isv.BUSINESS_LIMIT_CONTROL)
phone ``13800000004``            ``permanent-failure`` (as isv.MOBILE_NUMBER_ILLEGAL)
any other openid / phone         ``delivered`` (WeChat) / ``accepted`` (SMS)
===============================  ==================================================

Refused sends are not recorded in ``sent`` (nothing was sent). :class:`SimulatedSms`
de-duplicates on ``out_id`` like the real gateway: a repeated accepted ``out_id`` returns the
first answer and records nothing new. It sends no receipts by itself;
:meth:`SimulatedSms.receipt_for` builds the one the gateway would send, for whoever plays the
gateway's callback in test mode.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from notify_service.channels import SendResult
from notify_service.sms import SmsReceipt

__all__ = [
    "NO_CONSENT_OPENID",
    "PERMANENT_FAILURE_OPENID",
    "PERMANENT_FAILURE_PHONE",
    "TEMPORARY_FAILURE_PHONE",
    "SimulatedSms",
    "SimulatedSmsMessage",
    "SimulatedWeChat",
    "SimulatedWeChatMessage",
    "code_seen_in_test_mode",
]

NO_CONSENT_OPENID: Final = "sim-no-consent"
PERMANENT_FAILURE_OPENID: Final = "sim-permanent"
TEMPORARY_FAILURE_PHONE: Final = "13800000003"
PERMANENT_FAILURE_PHONE: Final = "13800000004"


@dataclass(frozen=True)
class SimulatedWeChatMessage:
    openid: str = field(repr=False)
    template_id: str
    page: str | None
    data: dict[str, str]
    miniprogram_state: str
    lang: str
    msgid: str


@dataclass(frozen=True)
class SimulatedSmsMessage:
    phone: str = field(repr=False)
    template_code: str
    params: dict[str, str]
    out_id: str
    biz_id: str


class SimulatedWeChat:
    """:class:`~notify_service.channels.WeChatChannel` that sends nothing."""

    def __init__(self) -> None:
        self.sent: list[SimulatedWeChatMessage] = []
        self.closed = False

    async def send_subscription(
        self,
        *,
        openid: str,
        template_id: str,
        page: str | None,
        data: dict[str, str],
        miniprogram_state: str,
        lang: str,
    ) -> SendResult:
        if self.closed:
            raise RuntimeError("SimulatedWeChat used after close()")
        if openid == NO_CONSENT_OPENID:
            return SendResult(
                outcome="no-consent",
                code="43101",
                detail="测试模式：用户未订阅该消息模板（模拟 43101）",
            )
        if openid == PERMANENT_FAILURE_OPENID:
            return SendResult(
                outcome="permanent-failure",
                code="40003",
                detail="测试模式：openid 无效（模拟 40003）",
            )
        # Real msgids are large integers; a recognisable prefix marks the simulated ones.
        msgid = f"sim-{uuid.uuid4().hex}"
        self.sent.append(
            SimulatedWeChatMessage(
                openid=openid,
                template_id=template_id,
                page=page,
                data=dict(data),
                miniprogram_state=miniprogram_state,
                lang=lang,
                msgid=msgid,
            )
        )
        return SendResult(outcome="delivered", provider_ref=msgid)

    async def close(self) -> None:
        self.closed = True


class SimulatedSms:
    """:class:`~notify_service.channels.SmsChannel` that sends nothing."""

    def __init__(self) -> None:
        self.sent: list[SimulatedSmsMessage] = []
        self.closed = False
        self._accepted: dict[str, SendResult] = {}

    def message(self, out_id: str) -> SimulatedSmsMessage | None:
        """The message "sent" with this id, if it was accepted."""
        return next((m for m in reversed(self.sent) if m.out_id == out_id), None)

    async def send_sms(
        self, *, phone: str, template_code: str, params: dict[str, str], out_id: str
    ) -> SendResult:
        if self.closed:
            raise RuntimeError("SimulatedSms used after close()")
        earlier = self._accepted.get(out_id)
        if earlier is not None:
            return earlier
        if phone == TEMPORARY_FAILURE_PHONE:
            return SendResult(
                outcome="temporary-failure",
                code="isv.BUSINESS_LIMIT_CONTROL",
                detail="测试模式：该号码短信发送频率超过网关限制（模拟）",
            )
        if phone == PERMANENT_FAILURE_PHONE:
            return SendResult(
                outcome="permanent-failure",
                code="isv.MOBILE_NUMBER_ILLEGAL",
                detail="测试模式：手机号码不合法（模拟）",
            )
        biz_id = f"sim-{uuid.uuid4().hex}"
        self.sent.append(
            SimulatedSmsMessage(
                phone=phone,
                template_code=template_code,
                params=dict(params),
                out_id=out_id,
                biz_id=biz_id,
            )
        )
        result = SendResult(outcome="accepted", provider_ref=biz_id)
        self._accepted[out_id] = result
        return result

    def receipt_for(self, biz_id: str, *, delivered: bool = True) -> SmsReceipt:
        """The receipt the gateway would send for an accepted message (now, as reported)."""
        message = next((m for m in self.sent if m.biz_id == biz_id), None)
        if message is None:
            raise KeyError(f"no simulated SMS with biz_id {biz_id!r}")
        return SmsReceipt(
            biz_id=biz_id,
            out_id=message.out_id,
            phone_number=message.phone,
            status="DELIVERED" if delivered else "FAILED",
            err_code="DELIVRD" if delivered else "SIM:FAILED",
            report_time=datetime.now(UTC),
        )

    async def close(self) -> None:
        self.closed = True


def code_seen_in_test_mode(sms: object, out_id: str) -> str | None:
    """The verification code a simulated SMS carried, so that a tester can type it back: in
    test mode no phone receives it. ``None`` with the real gateway (test mode is refused in
    production), so the code never leaves the platform but by SMS."""
    if not isinstance(sms, SimulatedSms):
        return None
    message = sms.message(out_id)
    return message.params.get("code") if message is not None else None
