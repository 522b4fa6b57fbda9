"""Every query of the notify service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notify_service.models import (
    ApplicationRecipient,
    Message,
    Notification,
    PhoneVerification,
    Recipient,
    SmsDailyCount,
    SubscriptionConsent,
    Template,
)

RETRYABLE = ("temporary-failure", "technical-failure")


# --- Recipients ---------------------------------------------------------------------------


async def recipient(session: AsyncSession, subject: str) -> Recipient | None:
    return await session.get(Recipient, subject)


async def save_recipient(session: AsyncSession, subject: str, **values: Any) -> None:
    """Create the recipient or change the given columns of it."""
    statement = insert(Recipient).values(subject=subject, **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Recipient.subject],
            set_={**values, "updated_at": func.now()},
        )
    )


async def lock_recipient(session: AsyncSession, subject: str) -> None:
    """Create the account's recipient row if need be and hold its lock to the end of the
    transaction: one account's phone verifications then run one after the other."""
    await save_recipient(session, subject)


async def phone_verification(session: AsyncSession, subject: str) -> PhoneVerification | None:
    return await session.get(PhoneVerification, subject, populate_existing=True)


async def delete_phone_verification(session: AsyncSession, subject: str) -> None:
    await session.execute(delete(PhoneVerification).where(PhoneVerification.subject == subject))


async def save_application_recipient(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(ApplicationRecipient).values(**values).on_conflict_do_nothing())


async def application_recipient(
    session: AsyncSession, application_id: str
) -> ApplicationRecipient | None:
    return await session.get(ApplicationRecipient, application_id)


# --- Consents -----------------------------------------------------------------------------


async def grant_consents(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(SubscriptionConsent).values(list(rows)))


async def unconsumed_consents(session: AsyncSession, subject: str) -> dict[str, int]:
    rows = await session.execute(
        select(SubscriptionConsent.template_id, func.count())
        .where(SubscriptionConsent.subject == subject, SubscriptionConsent.consumed_at.is_(None))
        .group_by(SubscriptionConsent.template_id)
    )
    return {template_id: count for template_id, count in rows.all()}


async def reserve_consent(
    session: AsyncSession, *, subject: str, template_id: str, message_id: str, now: datetime
) -> bool:
    """Take the oldest unused consent for ``template_id`` for this message; False if none.
    SKIP LOCKED: two notifications handled at once never take the same consent."""
    oldest = (
        select(SubscriptionConsent.id)
        .where(
            SubscriptionConsent.subject == subject,
            SubscriptionConsent.template_id == template_id,
            SubscriptionConsent.consumed_at.is_(None),
        )
        .order_by(SubscriptionConsent.granted_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    taken = await session.execute(
        update(SubscriptionConsent)
        .where(SubscriptionConsent.id == oldest)
        .values(consumed_at=now, message_id=message_id)
        .returning(SubscriptionConsent.id)
    )
    return taken.first() is not None


async def release_consent(session: AsyncSession, *, message_id: str) -> None:
    await session.execute(
        update(SubscriptionConsent)
        .where(SubscriptionConsent.message_id == message_id)
        .values(consumed_at=None, message_id=None)
    )


# --- Templates ----------------------------------------------------------------------------


async def current_template(session: AsyncSession, *, kind: str, channel: str) -> Template | None:
    return await session.scalar(
        select(Template)
        .where(Template.kind == kind, Template.channel == channel)
        .order_by(Template.version.desc())
        .limit(1)
    )


async def template_versions(session: AsyncSession, *, kind: str, channel: str) -> list[Template]:
    rows = await session.scalars(
        select(Template)
        .where(Template.kind == kind, Template.channel == channel)
        .order_by(Template.version.desc())
    )
    return list(rows)


async def current_templates(session: AsyncSession) -> list[Template]:
    latest = (
        select(Template.kind, Template.channel, func.max(Template.version).label("version"))
        .group_by(Template.kind, Template.channel)
        .subquery()
    )
    rows = await session.scalars(
        select(Template)
        .join(
            latest,
            and_(
                Template.kind == latest.c.kind,
                Template.channel == latest.c.channel,
                Template.version == latest.c.version,
            ),
        )
        .order_by(Template.kind, Template.channel)
    )
    return list(rows)


async def template(session: AsyncSession, template_id: str) -> Template | None:
    return await session.get(Template, template_id)


async def lock_templates(session: AsyncSession, *, kind: str, channel: str) -> None:
    """Serialise saves of one template (two admins saving at once get versions n+1 and n+2)."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtext(f"notify.template:{kind}:{channel}")))
    )


# --- Notifications (the inbox) ------------------------------------------------------------


async def insert_notification(session: AsyncSession, **values: Any) -> bool:
    """False when this event already made a notification for this person."""
    inserted = await session.execute(
        insert(Notification).values(**values).on_conflict_do_nothing().returning(Notification.id)
    )
    return inserted.first() is not None


async def notification(session: AsyncSession, notification_id: str) -> Notification | None:
    return await session.get(Notification, notification_id)


async def inbox(
    session: AsyncSession,
    *,
    subject: str,
    unread_only: bool,
    before: datetime | None,
    limit: int,
) -> list[Notification]:
    query = select(Notification).where(Notification.subject == subject)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    if before is not None:
        query = query.where(Notification.created_at < before)
    rows = await session.scalars(
        query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    )
    return list(rows)


async def unread_count(session: AsyncSession, *, subject: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.subject == subject, Notification.read_at.is_(None))
    )
    return int(count or 0)


async def mark_read(
    session: AsyncSession, *, subject: str, notification_id: str | None, now: datetime
) -> int:
    """Mark one notification (or, with ``None``, all) of ``subject`` read; how many changed."""
    statement = update(Notification).where(
        Notification.subject == subject, Notification.read_at.is_(None)
    )
    if notification_id is not None:
        statement = statement.where(Notification.id == notification_id)
    changed = await session.execute(statement.values(read_at=now).returning(Notification.id))
    return len(changed.all())


# --- Messages -----------------------------------------------------------------------------


async def insert_message(session: AsyncSession, **values: Any) -> bool:
    """False when the notification already has a message on this channel."""
    inserted = await session.execute(
        insert(Message).values(**values).on_conflict_do_nothing().returning(Message.id)
    )
    return inserted.first() is not None


async def message(session: AsyncSession, message_id: str, *, lock: bool = False) -> Message | None:
    return await session.get(Message, message_id, with_for_update=lock or None)


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[Message]:
    """Messages whose (next) attempt is due, locked so no other dispatcher takes them."""
    rows = await session.scalars(
        select(Message)
        .where(Message.next_attempt_at <= now)
        .order_by(Message.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def stuck_sending(
    session: AsyncSession, *, unanswered_before: datetime, unreceipted_before: datetime
) -> list[Message]:
    """``sending`` messages nobody recorded an answer for (their process died during the
    call), and accepted ones whose receipt never came."""
    rows = await session.scalars(
        select(Message)
        .where(
            Message.status == "sending",
            or_(
                and_(Message.provider_ref.is_(None), Message.sending_since < unanswered_before),
                and_(Message.provider_ref.is_not(None), Message.sending_since < unreceipted_before),
            ),
        )
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def messages(
    session: AsyncSession,
    *,
    status: str | None,
    application_id: str | None,
    limit: int,
) -> list[Message]:
    query = select(Message)
    if status is not None:
        query = query.where(Message.status == status)
    if application_id is not None:
        query = query.where(Message.application_id == application_id)
    rows = await session.scalars(query.order_by(Message.created_at.desc()).limit(limit))
    return list(rows)


async def messages_of(session: AsyncSession, notification_id: str) -> list[Message]:
    rows = await session.scalars(
        select(Message)
        .where(Message.notification_id == notification_id)
        .order_by(Message.created_at)
    )
    return list(rows)


# --- SMS limit ----------------------------------------------------------------------------


async def count_sms(session: AsyncSession, *, phone_index: str, day: date, limit: int) -> bool:
    """Count one SMS to this number today; False (and nothing counted) at the limit."""
    statement = insert(SmsDailyCount).values(phone_index=phone_index, day=day, sent=1)
    counted = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[SmsDailyCount.phone_index, SmsDailyCount.day],
            set_={"sent": SmsDailyCount.sent + 1},
            where=SmsDailyCount.sent < limit,
        ).returning(SmsDailyCount.sent)
    )
    return counted.first() is not None
