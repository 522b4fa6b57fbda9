"""Every query of the notify service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from notify_service.models import (
    ApplicationRecipient,
    EarlyEvent,
    Message,
    Notification,
    PhoneVerification,
    Recipient,
    SmsDailyCount,
    SubscriptionConsent,
    Template,
    kit_tables,
)

RETRYABLE = ("temporary-failure", "technical-failure")
_MESSAGE: Table = Message.__table__  # type: ignore[assignment]


def _insert_select(table: Table, values: dict[str, Any], *, where: ColumnElement[bool]) -> Any:
    """``INSERT INTO table (…) SELECT <values> WHERE <where>``: a row written only when
    ``where`` holds, inside a statement that decides it (the CTEs below)."""
    row = select(*(literal(v, table.c[k].type).label(k) for k, v in values.items())).where(where)
    return insert(table).from_select(list(values), row)


# --- Recipients ---------------------------------------------------------------------------


async def recipient(session: AsyncSession, subject: str) -> Recipient | None:
    return await session.get(Recipient, subject)


async def fresh_recipient(session: AsyncSession, subject: str) -> Recipient | None:
    """The row as committed now, not a copy an earlier statement of the session loaded."""
    return await session.get(Recipient, subject, populate_existing=True)


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


_APPLICATION_LOCK_SPACE = 7_406_121
"""The first key of notify's advisory locks on an application (the second: its id's hash)."""


async def lock_application(session: AsyncSession, application_id: str) -> None:
    """Until the transaction ends, be the only one to record the application's recipient or
    park an event of it (the two race when the submission and a later event are handled at
    once, on two partitions: each would miss the other's uncommitted row)."""
    await session.execute(
        select(func.pg_advisory_xact_lock(_APPLICATION_LOCK_SPACE, func.hashtext(application_id)))
    )


async def save_application_recipient(
    session: AsyncSession, *, application_id: str, **values: Any
) -> list[EarlyEvent]:
    """Keep whom the application concerns and take the events that arrived before it, in one
    statement (none, almost always: one round trip either way)."""
    saved = (
        insert(ApplicationRecipient)
        .values(application_id=application_id, **values)
        .on_conflict_do_nothing()
        .cte("saved")
    )
    taken = (
        delete(EarlyEvent)
        .where(EarlyEvent.application_id == application_id)
        .returning(*EarlyEvent.__table__.columns)
        .cte("taken")
    )
    rows = await session.execute(
        select(taken).add_cte(saved).order_by(taken.c.arrived_at, taken.c.event_id)
    )
    return [EarlyEvent(**row._mapping) for row in rows]


async def park_early_event(
    session: AsyncSession,
    *,
    event_id: str,
    application_id: str,
    kind: str,
    context: dict[str, Any],
    now: datetime,
) -> None:
    await session.execute(
        insert(EarlyEvent)
        .values(
            event_id=event_id,
            application_id=application_id,
            kind=kind,
            context=context,
            arrived_at=now,
        )
        .on_conflict_do_nothing()
    )


async def drop_early_events(session: AsyncSession, *, arrived_before: datetime) -> int:
    result = await session.execute(delete(EarlyEvent).where(EarlyEvent.arrived_at < arrived_before))
    return int(getattr(result, "rowcount", 0) or 0)


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


async def notify_and_push(
    session: AsyncSession,
    *,
    notification: dict[str, Any] | None,
    wechat: dict[str, Any] | None,
    consent_template_id: str | None,
    sms: dict[str, Any] | None,
    now: datetime,
) -> tuple[bool, str | None]:
    """The notification and its push message, in one statement.

    ``notification`` is written unless this event already made one for this person (then
    nothing else is); ``None`` means it exists (an SMS replacing a WeChat message). With it:
    the ``wechat`` message, if the oldest unused consent of its subject for
    ``consent_template_id`` can be reserved for it (SKIP LOCKED: two notifications handled at
    once never take the same consent), otherwise the ``sms`` message. Either may be ``None``
    (not possible for this recipient). Returns whether the notification was written (always
    True without one) and the id of the message written, if any.
    """
    # The statement is a SELECT over writing CTEs: the session would take it for a plain read
    # and run it in autocommit, outside the transaction (wangban.db.WritesBeginTransaction).
    # Taking the transaction's connection first keeps it in the unit of work.
    await session.connection()
    if notification is not None:
        written = (
            insert(Notification)
            .values(**notification)
            .on_conflict_do_nothing()
            .returning(Notification.id)
            .cte("notification_written")
        )
        new: ColumnElement[bool] = exists(select(written.c.id))
    else:
        new = literal(True)
    if wechat is None and sms is None:
        return bool(await session.scalar(select(new))), None
    wechat_written = sms_written = None
    reserved: ColumnElement[bool] = literal(False)
    if wechat is not None:
        oldest = (
            select(SubscriptionConsent.id)
            .where(
                SubscriptionConsent.subject == wechat["subject"],
                SubscriptionConsent.template_id == consent_template_id,
                SubscriptionConsent.consumed_at.is_(None),
            )
            .order_by(SubscriptionConsent.granted_at)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        taken = (
            update(SubscriptionConsent)
            .where(SubscriptionConsent.id == oldest, new)
            .values(consumed_at=now, message_id=wechat["id"])
            .returning(SubscriptionConsent.id)
            .cte("consent_taken")
        )
        reserved = exists(select(taken.c.id))
        wechat_written = (
            _insert_select(_MESSAGE, wechat, where=reserved)
            .returning(Message.id)
            .cte("wechat_written")
        )
    if sms is not None:
        sms_written = (
            _insert_select(_MESSAGE, sms, where=and_(new, ~reserved))
            .on_conflict_do_nothing()
            .returning(Message.id)
            .cte("sms_written")
        )
    written_ids = [
        select(cte.c.id).scalar_subquery()
        for cte in (wechat_written, sms_written)
        if cte is not None
    ]
    row = (await session.execute(select(new, func.coalesce(*written_ids)))).one()
    return bool(row[0]), row[1]


async def notification(session: AsyncSession, notification_id: str) -> Notification | None:
    return await session.get(Notification, notification_id)


async def notifications(session: AsyncSession, ids: Sequence[str]) -> dict[str, Notification]:
    rows = await session.scalars(select(Notification).where(Notification.id.in_(list(ids))))
    return {n.id: n for n in rows}


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


async def message(session: AsyncSession, message_id: str, *, lock: bool = False) -> Message | None:
    return await session.get(Message, message_id, with_for_update=lock or None)


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[Message]:
    """Messages whose (next) attempt is due, taken for sending in one statement: marked
    ``sending`` (one more attempt) from rows locked with SKIP LOCKED, so no other dispatcher
    takes them, and returned as they are now."""
    due = (
        select(Message.id)
        .where(Message.next_attempt_at <= now)
        .order_by(Message.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = await session.scalars(
        update(Message)
        .where(Message.id.in_(due.scalar_subquery()))
        .values(
            status="sending",
            sending_since=now,
            next_attempt_at=None,
            attempts=Message.attempts + 1,
            updated_at=now,
        )
        .returning(Message),
        execution_options={"populate_existing": True},
    )
    return sorted(rows, key=lambda m: m.created_at)


async def record_delivered(
    connection: AsyncConnection,
    *,
    message_id: str,
    provider_ref: str | None,
    now: datetime,
    event_row: dict[str, Any],
    returning: Sequence[ColumnElement[Any]],
) -> tuple[int, list[int] | None] | None:
    """A ``sending`` message delivered, and its ``message.delivered`` event, in one statement:
    the outbox row is written only if the message was still ``sending`` (the status guard: a
    receipt or the sweeper may have decided first). Returns what the outbox insert returns
    (``returning``: the row's ``seq`` and the earlier unpublished rows of its key, what the
    relay needs to send it), or None when nothing was written."""
    delivered = (
        update(Message)
        .where(Message.id == message_id, Message.status == "sending")
        .values(
            status="delivered",
            finished_at=now,
            updated_at=now,
            sending_since=None,
            failure_code=None,
            failure_detail=None,
            failure_field=None,
            provider_ref=func.coalesce(provider_ref, Message.provider_ref),
        )
        .returning(Message.id)
        .cte("delivered")
    )
    written = await connection.execute(
        _insert_select(
            kit_tables.outbox, event_row, where=exists(select(delivered.c.id))
        ).returning(*returning)
    )
    return written.first()


async def record_accepted(
    connection: AsyncConnection, *, message_id: str, provider_ref: str | None, now: datetime
) -> None:
    """The gateway took a ``sending`` SMS: it stays ``sending`` until its receipt."""
    await connection.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == "sending")
        .values(updated_at=now, provider_ref=func.coalesce(provider_ref, Message.provider_ref))
    )


async def give_back(
    connection: AsyncConnection, *, message_ids: Sequence[str], now: datetime
) -> int:
    """Messages handed to a dispatcher that stopped before sending them: due again, for any
    dispatcher (they were never sent, so the attempt they were created with is not counted)."""
    given: CursorResult[Any] = await connection.execute(
        update(Message)
        .where(
            Message.id.in_(list(message_ids)),
            Message.status == "sending",
            Message.provider_ref.is_(None),
        )
        .values(
            status="created",
            attempts=Message.attempts - 1,
            sending_since=None,
            next_attempt_at=now,
            updated_at=now,
        )
    )
    return int(given.rowcount)


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
