"""A citizen's side of notifications: how to reach them (WeChat binding, mobile number,
preferences), the one-time subscriptions they accepted, and their in-app inbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from notify_service import caches, repository
from notify_service.delivery import PHONE_CONTEXT
from notify_service.models import Notification, Recipient
from notify_service.templates import NotificationKind
from wangban.crypto import BlindIndex, FieldCipher, mask_phone
from wangban.errors import NotFound
from wangban.events import uuid7


class NotificationNotFound(NotFound):
    type_slug = "notification-not-found"
    title = "消息不存在"


async def bind_wechat(session: AsyncSession, *, subject: str, openid: str) -> None:
    """The gateway reports the openid an account logged in with (the only trusted source)."""
    await repository.save_recipient(session, subject, openid=openid)
    caches.recipient_changed(session, subject)


async def set_preferences(
    session: AsyncSession,
    *,
    subject: str,
    wechat_enabled: bool | None,
    fallback: Literal["sms", "inbox"] | None,
    phone: str | None,
    cipher: FieldCipher,
    blind_index: BlindIndex,
) -> Recipient:
    values: dict[str, object] = {}
    if wechat_enabled is not None:
        values["wechat_enabled"] = wechat_enabled
    if fallback is not None:
        values["fallback"] = fallback
    if phone == "":
        values.update(phone_enc=None, phone_index=None, phone_masked=None)
    elif phone is not None:
        values.update(
            phone_enc=cipher.encrypt(phone, context=PHONE_CONTEXT),
            phone_index=blind_index.phone(phone),
            phone_masked=mask_phone(phone),
        )
    await repository.save_recipient(session, subject, **values)
    caches.recipient_changed(session, subject)
    recipient = await repository.recipient(session, subject)
    assert recipient is not None
    await session.refresh(recipient)
    return recipient


async def preferences(session: AsyncSession, *, subject: str) -> Recipient:
    """The account's recipient row; defaults (not stored) when it has none yet."""
    recipient = await repository.recipient(session, subject)
    if recipient is None:
        return Recipient(subject=subject, wechat_enabled=True, fallback="sms")
    return recipient


SUBSCRIBE_KINDS: Final = (
    NotificationKind.APPLICATION_ACCEPTED,
    NotificationKind.APPLICATION_CORRECTION_REQUESTED,
    NotificationKind.APPLICATION_APPROVED,
)
"""What the mini-program asks the citizen's consent for, in one request (WeChat takes three
template ids at most): the notices a citizen waits for. The rest reach them by SMS or inbox."""


@dataclass(frozen=True)
class SubscriptionTemplate:
    kind: str
    label: str
    template_id: str


async def subscription_templates(session: AsyncSession) -> list[SubscriptionTemplate]:
    """The WeChat template ids to ask consent for (订阅消息), as this deployment registered them:
    the current WeChat template of each of :data:`SUBSCRIBE_KINDS` that has one."""
    found = []
    for kind in SUBSCRIBE_KINDS:
        template = await caches.current_template(session, kind=kind.value, channel="wechat")
        if template is not None:
            found.append(
                SubscriptionTemplate(
                    kind=kind.value, label=kind.label, template_id=str(template.body["template_id"])
                )
            )
    return found


async def record_subscriptions(
    session: AsyncSession,
    *,
    subject: str,
    results: dict[str, str],
    now: datetime,
) -> tuple[int, dict[str, int]]:
    """One consent per "accept" (a one-time subscription is worth one message). Refusals add
    nothing and take nothing away: an earlier unused consent is still the citizen's choice."""
    accepted = [template_id for template_id, choice in results.items() if choice == "accept"]
    await repository.grant_consents(
        session,
        [
            {"id": str(uuid7()), "subject": subject, "template_id": t, "granted_at": now}
            for t in accepted
        ],
    )
    return len(accepted), await repository.unconsumed_consents(session, subject)


async def mark_read(
    session: AsyncSession, *, subject: str, notification_id: str | None, now: datetime
) -> int:
    if notification_id is not None:
        found = await repository.notification(session, notification_id)
        if found is None or found.subject != subject:
            # Someone else's notification is as absent as a missing one.
            raise NotificationNotFound("消息不存在或不属于当前用户")
    return await repository.mark_read(
        session, subject=subject, notification_id=notification_id, now=now
    )


async def inbox_page(
    session: AsyncSession,
    *,
    subject: str,
    unread_only: bool,
    before: datetime | None,
    limit: int,
) -> tuple[list[Notification], int]:
    items = await repository.inbox(
        session, subject=subject, unread_only=unread_only, before=before, limit=limit
    )
    return items, await repository.unread_count(session, subject=subject)
