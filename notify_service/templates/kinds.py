"""What a notification is about and where it goes: the kinds (one per event a citizen hears
about), the channels, and the length limits of the SMS and inbox channels. (WeChat's ``thing``
limit lives with the other keyword rules, in :mod:`notify_service.templates.wechat_rules`.)"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, TypeAlias

from wangban import labels

Channel: TypeAlias = Literal["wechat", "sms", "inbox"]
CHANNEL_LABELS: Final[dict[str, str]] = {
    c: labels.CHANNEL_LABELS[c] for c in ("wechat", "sms", "inbox")
}

SMS_PARAM_MAX: Final = 35
SMS_SINGLE_MAX: Final = 70
SMS_SEGMENT_MAX: Final = 67
"""A long SMS is sent as concatenated parts, each losing 3 characters to the joining header."""
INBOX_TITLE_MAX: Final = 40
INBOX_BODY_MAX: Final = 500


class NotificationKind(StrEnum):
    APPLICATION_ACCEPTED = "application.accepted"
    APPLICATION_NOT_ACCEPTED = "application.not_accepted"
    APPLICATION_CORRECTION_REQUESTED = "application.correction_requested"
    APPLICATION_APPROVED = "application.approved"
    APPLICATION_DENIED = "application.denied"
    CERTIFICATE_ISSUED = "certificate.issued"
    SUPPLEMENT_REMINDER = "supplement.reminder"
    RECTIFICATION_REPLIED = "rectification.replied"
    # Retired: "application.completed" and "rating.invitation" (two more notifications of one
    # application, after its result); the final notice now carries the rating link.

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


_KIND_LABELS: Final[dict[NotificationKind, str]] = {
    NotificationKind.APPLICATION_ACCEPTED: "申请已受理",
    NotificationKind.APPLICATION_NOT_ACCEPTED: "申请不予受理",
    NotificationKind.APPLICATION_CORRECTION_REQUESTED: "申请需补正材料",
    NotificationKind.APPLICATION_APPROVED: "审批通过",
    NotificationKind.APPLICATION_DENIED: "审批不予许可",
    NotificationKind.CERTIFICATE_ISSUED: "证照已签发",
    NotificationKind.SUPPLEMENT_REMINDER: "容缺材料补交提醒",
    NotificationKind.RECTIFICATION_REPLIED: "差评整改已回复",
}
