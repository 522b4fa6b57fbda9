"""One-time benefits: an item's ``grant_limit``, checked at submission under an advisory lock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import repository
from intake_service.applications.errors import AlreadyGranted, ApplicationOpen
from intake_service.models import Application, ItemVersionCopy
from wangban import labels
from wangban.calendar import CHINA_TZ, china_date

OPEN_STATES: Sequence[str] = (
    "submitted",
    "accepted",
    "under_review",
    "correction_requested",
    "resubmitted",
)
"""Submitted and not decided yet (a draft is not an application yet: it does not count)."""

_PERIOD_NAMES: Mapping[str, str] = {"year": "年", "month": "月"}


def grant_period_start(period: str, now: datetime) -> datetime:
    """The start of the current calendar ``period`` in China time."""
    local = now.astimezone(CHINA_TZ)
    start = local.replace(
        month=1 if period == "year" else local.month, day=1, hour=0, minute=0, second=0
    )
    return start.replace(microsecond=0)


def is_limited(item: ItemVersionCopy) -> bool:
    """Whether the item is a one-time benefit (its ``grant_limit``)."""
    return str(item.content.get("grant_limit") or "none") != "none"


async def check_grant_limit(
    session: AsyncSession,
    *,
    application: Application,
    item: ItemVersionCopy,
    now: datetime,
    locked: bool = False,
) -> None:
    """A one-time benefit (``grant_limit`` of the item) is applied for while no other
    application of the same applicant for the item is open or granted (in the period). The
    advisory lock held to the end of the transaction makes two concurrent submissions meet;
    ``locked``: the transaction holds it already (taken as the application was inserted)."""
    if not is_limited(item):
        return
    limit = str(item.content.get("grant_limit"))
    period = str(item.content.get("grant_period") or "year")
    if not locked:
        await repository.lock_grant(
            session, applicant_ref=application.applicant_ref, item_code=application.item_code
        )
    found = await repository.open_or_granted(
        session,
        applicant_ref=application.applicant_ref,
        item_code=application.item_code,
        open_states=OPEN_STATES,
        granted_since=grant_period_start(period, now) if limit == "once_per_period" else None,
        exclude_id=application.id,
    )
    if not found:
        return
    existing = found[0]
    rule = (
        "每人限享受一次" if limit == "once" else f"每{_PERIOD_NAMES.get(period, period)}限享受一次"
    )
    state = labels.status_label(existing.status)
    extra = {
        "existing_application": {
            "id": existing.id,
            "status": existing.status,
            "status_name": state,
            "submitted_at": existing.submitted_at.isoformat() if existing.submitted_at else None,
            "decided_at": existing.decided_at.isoformat() if existing.decided_at else None,
        }
    }
    if existing.status in OPEN_STATES:
        submitted = china_date(existing.submitted_at or existing.created_at)
        raise ApplicationOpen(
            f"您已于 {submitted.isoformat()} 提交「{existing.item_name}」的申请"
            f"（申请编号 {existing.id}，当前状态：{state}），该事项{rule}。"
            "请等待办理结果，或撤回该申请后再申请。",
            extra=extra,
        )
    decided = china_date(existing.decided_at or existing.created_at)
    raise AlreadyGranted(
        f"您申请的「{existing.item_name}」已于 {decided.isoformat()} 获准"
        f"（申请编号 {existing.id}，当前状态：{state}），该事项{rule}，不能重复申请。",
        extra=extra,
    )
