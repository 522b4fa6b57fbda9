"""Request and response bodies of the notify service's API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wangban.crypto import normalize_phone

_MAINLAND_MOBILE = re.compile(r"1[3-9][0-9]{9}")


class NotificationOut(BaseModel):
    id: str
    kind: str
    title: str
    body: str
    application_id: str | None
    created_at: datetime
    read_at: datetime | None


class InboxOut(BaseModel):
    items: list[NotificationOut]
    unread: int
    next_before: datetime | None
    """Pass as ``before`` for the next (older) page; null on the last page."""


class ReadOut(BaseModel):
    marked: int
    unread: int


class SubscriptionReportIn(BaseModel):
    """What ``wx.requestSubscribeMessage`` answered: template id → the user's choice."""

    model_config = ConfigDict(extra="forbid")

    results: dict[str, Literal["accept", "reject", "ban", "filter"]] = Field(
        min_length=1, max_length=20
    )

    @field_validator("results")
    @classmethod
    def _template_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for template_id in value:
            if not 1 <= len(template_id) <= 128:
                raise ValueError("模板 ID 长度应为 1–128 个字符")
        return value


class SubscriptionTemplateOut(BaseModel):
    kind: str
    label: str
    """What the notice tells, in Chinese (申请已受理, …)."""
    template_id: str
    """The id to pass to wx.requestSubscribeMessage."""


class ConsentsOut(BaseModel):
    granted: int
    """One-time subscriptions recorded by this report."""
    unused: dict[str, int]
    """Unused one-time subscriptions per template id, after this report."""


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wechat_enabled: bool | None = None
    fallback: Literal["sms", "inbox"] | None = None
    """When WeChat cannot carry a message: an SMS, or the in-app inbox only."""
    phone: Literal[""] | None = Field(default=None, max_length=20)
    """An empty string removes my number. A number is given through its SMS code
    (``POST /me/phone``, then ``POST /me/phone/verify``), never set here: otherwise anyone
    could send our notices to someone else's phone."""

    @field_validator("phone", mode="before")
    @classmethod
    def _mobile(cls, value: object) -> object:
        if not isinstance(value, str) or value == "":
            return value
        if not _MAINLAND_MOBILE.fullmatch(normalize_phone(value)):
            raise ValueError("请填写正确的 11 位手机号码")
        raise ValueError("手机号码需通过短信验证码验证：请先获取验证码（POST /me/phone）")


class PreferencesOut(BaseModel):
    wechat_bound: bool
    wechat_enabled: bool
    fallback: Literal["sms", "inbox"]
    phone_masked: str | None
    unused_consents: dict[str, int]


class WeChatBindingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    openid: str = Field(min_length=1, max_length=128)


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any]
    """The channel's template body: see ``WeChatTemplateBody``, ``SmsTemplateBody``,
    ``InboxTemplateBody``."""


class TemplateOut(BaseModel):
    id: str
    kind: str
    channel: str
    version: int
    body: dict[str, Any]
    created_by: str
    created_at: datetime


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: dict[str, Any] | None = None
    """A draft to preview; empty: the current version."""
    context: dict[str, Any] | None = None
    """Values to render with; empty: the kind's sample."""


class PreviewOut(BaseModel):
    kind: str
    channel: str
    rendered: dict[str, Any]


class MessageOut(BaseModel):
    id: str
    notification_id: str
    kind: str
    channel: str
    application_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    failure_code: str | None
    failure_detail: str | None
    failure_field: str | None
    fallback_of: str | None
    template_version_id: str
    created_at: datetime
    finished_at: datetime | None


class PhoneIn(BaseModel):
    """A mainland mobile number for SMS: a code is sent to it, and it is used once verified."""

    model_config = ConfigDict(extra="forbid")

    mobile: str = Field(max_length=20)

    @field_validator("mobile")
    @classmethod
    def _mobile(cls, value: str) -> str:
        phone = normalize_phone(value)
        if not _MAINLAND_MOBILE.fullmatch(phone):
            raise ValueError("请填写正确的 11 位手机号码")
        return phone


class PhoneCodeOut(BaseModel):
    phone_masked: str
    expires_in: int
    """Seconds the code stays valid."""
    resend_after: int
    """Seconds before another code may be asked for."""
    test_mode: bool
    """Test mode: the SMS was simulated, nothing reached a phone."""
    test_code: str | None = None
    """Test mode only: the code the simulated SMS carried, to type back (no phone got it)."""


class PhoneCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^\s*[0-9]{6}\s*$")
    """The 6-digit code from the SMS."""
