"""The Chinese words citizens read for our codes: application states, decision outcomes and
channels. One table, shared by the services that render them (intake's status names, notify's
messages), so that a code such as ``approved`` never reaches a citizen as English and the same
state is called the same everywhere.

Codes stay English in APIs, events and the database (they are identifiers); these labels are
for text a person reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

STATUS_LABELS: Final[Mapping[str, str]] = {
    "draft": "草稿",
    "submitted": "已提交",
    "accepted": "已受理",
    "not_accepted": "不予受理",
    "under_review": "审查中",
    "correction_requested": "待补正",
    "resubmitted": "已补正",
    "approved": "审批通过",
    "certificate_failed": "审批通过，证照待出具",
    "denied": "不予通过",
    "completed": "已办结",
    "delivered": "结果已送达",
    "withdrawn": "已撤回",
    "terminated": "已终止",
}
"""An application's state (intake's state machine) as the applicant reads it."""

MATERIAL_STATUS_LABELS: Final[Mapping[str, str]] = {
    "missing": "缺少",
    "tolerated": "容缺（待补齐）",
    "uploaded": "已上传",
    "reused": "已上传（复用）",
    "shared": "数据共享获取",
    "certificate": "电子证照",
    "waived": "免提交",
    "commitment": "告知承诺",
}
"""How an application's material was met (intake's material rows), as the applicant reads it."""

OUTCOME_LABELS: Final[Mapping[str, str]] = {
    "approved": "准予许可",
    "denied": "不予许可",
}
"""A decision (approval's ``case.approved`` / ``case.denied``, intake's completion outcome)."""

CHANNEL_LABELS: Final[Mapping[str, str]] = {
    # Where an application was made.
    "mini_program": "小程序",
    "web": "网上办事大厅",
    "kiosk": "自助终端",
    "window": "综合窗口",
    # How a citizen is told.
    "wechat": "微信订阅消息",
    "sms": "短信",
    "inbox": "站内信",
}

VOCABULARY: Final = frozenset(
    word
    for table in (STATUS_LABELS, OUTCOME_LABELS, CHANNEL_LABELS)
    for code in table
    for word in (code, *(part for part in code.split("_") if len(part) > 3))
)
"""Every code (and each part of a compound one) these tables translate: a citizen-facing text
containing one as a word has let a code through untranslated."""


def status_label(code: str) -> str:
    """The state's Chinese name; an unknown code is shown as "办理中" rather than as English."""
    return STATUS_LABELS.get(code, "办理中")


def material_status_label(code: str) -> str:
    """How a material was met, in words; an unknown code reads as "已提交"."""
    return MATERIAL_STATUS_LABELS.get(code, "已提交")


def outcome_label(code: str | None) -> str | None:
    """The decision in words; free text (a rectification reply) passes through unchanged."""
    if code is None:
        return None
    return OUTCOME_LABELS.get(code, STATUS_LABELS.get(code, code))
