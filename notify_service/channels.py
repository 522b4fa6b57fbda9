"""What the delivery rules need from a channel, whatever stands behind it.

Two push channels reach a citizen outside the app: the WeChat mini-program subscription message
(:mod:`notify_service.wechat`) and SMS through an HTTP SMS gateway (:mod:`notify_service.sms`).
In test mode (like GOV.UK Notify's test keys) :mod:`notify_service.simulated` stands in for both:
the whole path runs, nothing is sent. The in-app inbox is not a channel here: it is our own table.

A channel never raises for an answer it understood: it returns a :class:`SendResult` that says
which way the message goes next. It raises nothing but programming errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Outcome = Literal[
    "delivered",
    "accepted",
    "no-consent",
    "temporary-failure",
    "permanent-failure",
    "technical-failure",
]
"""How a send ended:

* ``delivered``: the provider took the message and there is no later receipt to wait for
  (WeChat answers errcode 0);
* ``accepted``: the provider took it and will report delivery later (an SMS receipt), so the
  message stays ``sending`` until the receipt comes or the sweeper gives up;
* ``no-consent``: WeChat 43101, the user has not subscribed to this template (or refused);
  the delivery rules fall back to SMS or the inbox;
* ``temporary-failure``: the provider is busy or limiting us; worth another attempt later;
* ``permanent-failure``: this message can never be sent as it is (a template field WeChat
  refuses, an unknown openid or template id, a number the gateway refuses); ``field`` names
  the template field when the provider said which;
* ``technical-failure``: we could not reach the provider or understand its answer (network,
  timeout, 5xx, garbage); worth another attempt later.
"""


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    provider_ref: str | None = None
    """The provider's id for the message (WeChat ``msgid``, the gateway's ``biz_id``)."""
    code: str | None = None
    """The provider's own code for a failure (``"43101"``, ``"isv.BUSINESS_LIMIT_CONTROL"``)."""
    detail: str | None = None
    """What went wrong, readable by staff; never contains the recipient's number or openid."""
    field: str | None = None
    """The template field the provider named (WeChat 47003: ``data.thing1.value``→``thing1``)."""


class WeChatChannel(Protocol):
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
        """``POST /cgi-bin/message/subscribe/send`` with ``data`` as
        ``{"thing1": {"value": "…"}}``."""
        ...

    async def close(self) -> None: ...


class SmsChannel(Protocol):
    async def send_sms(
        self, *, phone: str, template_code: str, params: dict[str, str], out_id: str
    ) -> SendResult:
        """Send one SMS from a registered template. ``out_id`` is our message id: the gateway
        de-duplicates on it, so a repeated send after a crash is not a second SMS."""
        ...

    async def close(self) -> None: ...
