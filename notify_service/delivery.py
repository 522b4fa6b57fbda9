"""The delivery rules: who is told what, on which channel, and what happens to each message.

* Every triggering event becomes one **notification** in the citizen's in-app inbox (站内信),
  whatever else happens: the inbox is the channel that cannot fail.
* It is also pushed outside the app on at most one channel at a time: a WeChat subscription
  message when the citizen has an unused one-time consent for that template (one consent, one
  send), otherwise, or when WeChat refuses it for good (43101: not subscribed), an SMS if the
  citizen's preferences allow it and the number has not had its daily share.
* A message goes ``created`` → ``sending`` → ``delivered`` or one of the failures. Temporary and
  technical failures are retried with exponential backoff, bounded in attempts and in time. A
  status guard (only a ``sending`` message takes an answer) and the unique (notification,
  channel) pair keep a redelivered event, a late receipt or a second dispatcher from sending or
  recording anything twice.
* Messages are rendered at send time from the notification's stored context with the template
  version chosen when the message was created, and checked again against the channel's rules:
  a value WeChat would refuse fails the message naming the field, before any call.

Services flush, never commit: the consumer's handler transaction, the request's unit of work
or the dispatcher's short transactions commit.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from notify_service import repository, templates
from notify_service.channels import SendResult, SmsChannel, WeChatChannel
from notify_service.events import MessageDelivered, MessageFailed, outbox
from notify_service.models import Message, Recipient
from wangban.crypto import DecryptionError, FieldCipher
from wangban.db import Database
from wangban.events import uuid7
from wangban.settings import Settings

log = logging.getLogger(__name__)

BEIJING = ZoneInfo("Asia/Shanghai")
PHONE_CONTEXT = "notify.phone"
"""Encryption context of a recipient's stored mobile number."""

_DATE_KEYS = ("due_date", "tolerated_until")


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- Whom to tell -------------------------------------------------------------------------


async def record_application(
    session: AsyncSession,
    *,
    application_id: str,
    subject: str,
    item_code: str,
    item_name: str,
    applicant_name_masked: str,
) -> None:
    """Remember whom an application's later events concern (they carry only its id)."""
    await repository.save_application_recipient(
        session,
        application_id=application_id,
        subject=subject,
        item_code=item_code,
        item_name=item_name or item_code,
        applicant_name_masked=applicant_name_masked,
    )


def short_id(application_id: str) -> str:
    """What a citizen reads back on the phone: the last 8 characters, upper-case."""
    return application_id.replace("-", "")[-8:].upper()


# --- The notification ---------------------------------------------------------------------


async def notify(
    session: AsyncSession,
    *,
    event_id: str,
    kind: templates.NotificationKind,
    application_id: str,
    at: datetime,
    facts: Mapping[str, Any],
    now: datetime,
) -> str | None:
    """Store the inbox notification for ``event_id`` and plan its push. Returns its id, or
    None when nobody is known for the application or the event was handled before."""
    target = await repository.application_recipient(session, application_id)
    if target is None:
        # Submitted before this service kept recipients, or by a channel with no account:
        # nobody to tell. Not an error: the event stays consumed.
        log.info("no recipient for application %s: %s not notified", application_id, kind.value)
        return None
    context: dict[str, Any] = {
        "kind": kind.value,
        "item": {"name": target.item_name, "code": target.item_code},
        "application": {"id": application_id, "short_id": short_id(application_id)},
        "applicant": {"name_masked": target.applicant_name_masked},
        "at": at,
        "reason": None,
        "materials": [],
        "due_date": None,
        "tolerated_until": None,
        "certificate": None,
        "outcome": None,
        **facts,
    }
    title, body = await _inbox_text(session, kind=kind, context=context)
    notification_id = str(uuid7())
    created = await repository.insert_notification(
        session,
        id=notification_id,
        event_id=event_id,
        subject=target.subject,
        kind=kind.value,
        application_id=application_id,
        title=title,
        body=body,
        context=context_to_json(context),
        created_at=now,
    )
    if not created:
        return None
    await plan_push(
        session,
        notification_id=notification_id,
        subject=target.subject,
        kind=kind.value,
        application_id=application_id,
        now=now,
    )
    return notification_id


async def _inbox_text(
    session: AsyncSession, *, kind: templates.NotificationKind, context: Mapping[str, Any]
) -> tuple[str, str]:
    template = await repository.current_template(session, kind=kind.value, channel="inbox")
    if template is not None:
        try:
            rendered = templates.render_inbox(
                templates.InboxTemplateBody.model_validate(template.body), dict(context)
            )
            return rendered.title, rendered.body
        except templates.RenderedValueInvalid as invalid:
            # The inbox must not lose the notification over a template: say it plainly.
            log.warning("inbox template %s v%d: %s", kind.value, template.version, invalid)
    item = context["item"]["name"]
    return kind.label, f"您办理的“{item}”有新进展，请在“我的办件”中查看。"


async def plan_push(
    session: AsyncSession,
    *,
    notification_id: str,
    subject: str,
    kind: str,
    application_id: str | None,
    now: datetime,
    instead_of: Message | None = None,
) -> str | None:
    """Create the push message of a notification, on the first channel that may carry it.

    WeChat needs the account's openid, the citizen not to have turned WeChat messages off, a
    template for the kind, and an unused one-time consent for that template (reserved here for
    this message). SMS needs the citizen to allow it and a number. ``instead_of`` is the WeChat
    message this one replaces (then only SMS is considered). Returns the new message's id.
    """
    recipient = await repository.recipient(session, subject)
    if recipient is None:
        return None
    if instead_of is None and recipient.openid and recipient.wechat_enabled:
        wechat = await repository.current_template(session, kind=kind, channel="wechat")
        if wechat is not None:
            message_id = str(uuid7())
            if await repository.reserve_consent(
                session,
                subject=subject,
                template_id=str(wechat.body["template_id"]),
                message_id=message_id,
                now=now,
            ):
                await _new_message(
                    session,
                    message_id=message_id,
                    notification_id=notification_id,
                    subject=subject,
                    kind=kind,
                    application_id=application_id,
                    channel="wechat",
                    template_version_id=wechat.id,
                    now=now,
                )
                return message_id
    if recipient.fallback == "sms" and recipient.phone_enc:
        sms = await repository.current_template(session, kind=kind, channel="sms")
        if sms is not None:
            message_id = str(uuid7())
            if await _new_message(
                session,
                message_id=message_id,
                notification_id=notification_id,
                subject=subject,
                kind=kind,
                application_id=application_id,
                channel="sms",
                template_version_id=sms.id,
                now=now,
                fallback_of=instead_of.id if instead_of else None,
            ):
                return message_id
    return None


async def _new_message(
    session: AsyncSession,
    *,
    message_id: str,
    notification_id: str,
    subject: str,
    kind: str,
    application_id: str | None,
    channel: str,
    template_version_id: str,
    now: datetime,
    fallback_of: str | None = None,
) -> bool:
    return await repository.insert_message(
        session,
        id=message_id,
        notification_id=notification_id,
        subject=subject,
        kind=kind,
        application_id=application_id,
        channel=channel,
        template_version_id=template_version_id,
        status="created",
        attempts=0,
        next_attempt_at=now,
        fallback_of=fallback_of,
        created_at=now,
        updated_at=now,
    )


# --- Sending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channels:
    wechat: WeChatChannel
    sms: SmsChannel
    test_mode: bool = False

    async def close(self) -> None:
        await self.wechat.close()
        await self.sms.close()


@dataclass(frozen=True)
class _Outgoing:
    message_id: str
    send: Callable[[], Awaitable[SendResult]] | None
    """The call to make, or None when the answer is known without one (``decided``)."""
    decided: SendResult | None = None


class Dispatcher:
    """Sends due messages: claims them in a short transaction (marking them ``sending``),
    calls the channels with no transaction open, then records each answer in its own.

    Several dispatchers (workers, replicas) can run at once: claims skip locked rows.
    """

    name = "dispatcher"

    def __init__(
        self,
        *,
        database: Database,
        settings: Settings,
        channels: Channels,
        cipher: FieldCipher,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.database = database
        self.settings = settings
        self.channels = channels
        self.cipher = cipher
        self.clock = clock
        self.interval_s = settings.notify_dispatch_interval_s

    async def run_once(self) -> int:
        """Send what is due now; how many messages were claimed."""
        now = self.clock()
        async with self.database.sessionmaker() as session, session.begin():
            due = await repository.claim_due(
                session, now=now, limit=self.settings.notify_dispatch_batch
            )
            outgoing = [await self._prepare(session, message, now=now) for message in due]
        if not outgoing:
            return 0
        results = await asyncio.gather(*(self._call(item) for item in outgoing))
        for item, result in zip(outgoing, results, strict=True):
            async with self.database.sessionmaker() as session, session.begin():
                await record_answer(
                    session,
                    message_id=item.message_id,
                    result=result,
                    settings=self.settings,
                    now=self.clock(),
                    test_mode=self.channels.test_mode,
                )
        return len(outgoing)

    async def close(self) -> None:
        await self.channels.close()

    async def _call(self, item: _Outgoing) -> SendResult:
        if item.send is None:
            assert item.decided is not None
            return item.decided
        try:
            return await item.send()
        except Exception as exc:
            # A channel answers with a SendResult; an exception is our bug or the library's.
            # The message must not stay "sending" for it: record a technical failure (retried).
            log.exception("channel raised while sending message %s", item.message_id)
            return SendResult(outcome="technical-failure", code="error", detail=type(exc).__name__)

    async def _prepare(
        self, session: AsyncSession, message: Message, *, now: datetime
    ) -> _Outgoing:
        message.status = "sending"
        message.sending_since = now
        message.next_attempt_at = None
        message.attempts += 1
        message.updated_at = now
        await session.flush()
        notification = await repository.notification(session, message.notification_id)
        template = await repository.template(session, message.template_version_id)
        recipient = await repository.recipient(session, message.subject)
        assert notification is not None and template is not None
        context = context_from_json(notification.context)
        try:
            if message.channel == "wechat":
                return await self._prepare_wechat(message, template.body, context, recipient)
            return await self._prepare_sms(session, message, template.body, context, recipient, now)
        except templates.RenderedValueInvalid as invalid:
            return _decided(
                message,
                SendResult(
                    outcome="permanent-failure",
                    code="render",
                    field=invalid.field,
                    detail=invalid.message,
                ),
            )
        except ValidationError:
            # A stored template version this code can no longer read: it never will.
            return _decided(
                message,
                SendResult(outcome="permanent-failure", code="template", detail="模板版本无法读取"),
            )
        except DecryptionError:
            # The number was encrypted with a key no longer configured: retried in case the
            # key comes back, and bounded like any technical failure.
            return _decided(
                message,
                SendResult(outcome="technical-failure", code="key", detail="手机号码无法解密"),
            )

    async def _prepare_wechat(
        self,
        message: Message,
        body: dict[str, Any],
        context: dict[str, Any],
        recipient: Recipient | None,
    ) -> _Outgoing:
        if recipient is None or not recipient.openid:
            return _decided(message, _no_address("微信账号未绑定"))
        template = templates.WeChatTemplateBody.model_validate(body)
        data = templates.render_wechat(template, context)
        page = templates.render_wechat_page(template, context)
        openid = recipient.openid

        def send() -> Awaitable[SendResult]:
            return self.channels.wechat.send_subscription(
                openid=openid,
                template_id=template.template_id,
                page=page,
                data=data,
                miniprogram_state=self.settings.wechat_miniprogram_state,
                lang=self.settings.wechat_lang,
            )

        return _Outgoing(message_id=message.id, send=send)

    async def _prepare_sms(
        self,
        session: AsyncSession,
        message: Message,
        body: dict[str, Any],
        context: dict[str, Any],
        recipient: Recipient | None,
        now: datetime,
    ) -> _Outgoing:
        if recipient is None or not recipient.phone_enc or not recipient.phone_index:
            return _decided(message, _no_address("未留手机号码"))
        template = templates.SmsTemplateBody.model_validate(body)
        rendered = templates.render_sms(
            template,
            context,
            sign_name=self.settings.sms_sign_name,
            max_chars=self.settings.sms_max_chars,
        )
        if message.attempts == 1 and not await repository.count_sms(
            session,
            phone_index=recipient.phone_index,
            day=now.astimezone(BEIJING).date(),
            limit=self.settings.sms_daily_limit_per_number,
        ):
            # Counted once per message (a retry is the same SMS, de-duplicated by out_id).
            return _decided(
                message,
                SendResult(
                    outcome="permanent-failure",
                    code="daily-limit",
                    detail=f"该号码今日短信已达 {self.settings.sms_daily_limit_per_number} 条上限",
                ),
            )
        phone = self.cipher.decrypt(recipient.phone_enc, context=PHONE_CONTEXT)

        def send() -> Awaitable[SendResult]:
            return self.channels.sms.send_sms(
                phone=phone,
                template_code=template.template_code,
                params=rendered.params,
                out_id=message.id,
            )

        return _Outgoing(message_id=message.id, send=send)


def _decided(message: Message, result: SendResult) -> _Outgoing:
    return _Outgoing(message_id=message.id, send=None, decided=result)


def _no_address(detail: str) -> SendResult:
    return SendResult(outcome="permanent-failure", code="no-address", detail=detail)


# --- Answers, receipts and the sweeper ----------------------------------------------------


async def record_answer(
    session: AsyncSession,
    *,
    message_id: str,
    result: SendResult,
    settings: Settings,
    now: datetime,
    test_mode: bool = False,
) -> None:
    """Record what the channel answered for a ``sending`` message (anything else: ignored)."""
    message = await repository.message(session, message_id, lock=True)
    if message is None or message.status != "sending":
        return  # the sweeper or a receipt decided meanwhile: the first answer stands
    message.updated_at = now
    if result.provider_ref:
        message.provider_ref = result.provider_ref
    if result.outcome == "delivered":
        await _delivered(session, message, now=now, test_mode=test_mode)
    elif result.outcome == "accepted":
        if test_mode:
            # Test mode has no gateway to send a receipt: simulate a delivered one at once.
            await _delivered(session, message, now=now, test_mode=True)
        else:
            await session.flush()  # sending, until the receipt (or the sweeper)
    elif result.outcome in ("temporary-failure", "technical-failure"):
        delay = _retry_delay(settings, attempts=message.attempts)
        deadline = message.created_at + timedelta(seconds=settings.notify_retry_window_s)
        _failed_attempt(message, result)
        if message.attempts < settings.notify_max_attempts and now + delay <= deadline:
            message.next_attempt_at = now + delay
            message.sending_since = None
            await session.flush()
        else:
            await _gave_up(session, message, settings=settings, now=now, test_mode=test_mode)
    else:  # permanent-failure, no-consent
        _failed_attempt(message, result)
        if result.outcome == "no-consent":
            message.status = "permanent-failure"
            message.failure_code = result.code or "43101"
        await _gave_up(session, message, settings=settings, now=now, test_mode=test_mode)


def _retry_delay(settings: Settings, *, attempts: int) -> timedelta:
    base = settings.notify_retry_backoff_s * 2 ** max(attempts - 1, 0)
    # Jitter: a provider that was down for everyone is not hit by every retry at once.
    return timedelta(seconds=base * (0.75 + random.random() / 2))


def _failed_attempt(message: Message, result: SendResult) -> None:
    message.status = result.outcome
    message.failure_code = result.code
    message.failure_detail = result.detail
    message.failure_field = result.field


async def _delivered(
    session: AsyncSession, message: Message, *, now: datetime, test_mode: bool
) -> None:
    message.status = "delivered"
    message.finished_at = now
    message.sending_since = None
    message.failure_code = message.failure_detail = message.failure_field = None
    await session.flush()
    await outbox.publish(
        session,
        MessageDelivered(
            message_id=message.id,
            notification_id=message.notification_id,
            kind=message.kind,
            channel=message.channel,
            application_id=message.application_id,
            attempts=message.attempts,
            delivered_at=now.isoformat(),
            test_mode=test_mode,
        ),
    )


async def _gave_up(
    session: AsyncSession, message: Message, *, settings: Settings, now: datetime, test_mode: bool
) -> None:
    """The message is over without delivery: tell partners, give back a WeChat consent WeChat
    never used, and try SMS instead of a WeChat message that could not go."""
    message.next_attempt_at = None
    message.sending_since = None
    message.finished_at = now
    await session.flush()
    if message.channel == "wechat" and message.failure_code not in ("43101", "no-consent", "lost"):
        # 43101: WeChat says the consent is not there; "lost": it may have been used.
        await repository.release_consent(session, message_id=message.id)
    await outbox.publish(
        session,
        MessageFailed(
            message_id=message.id,
            notification_id=message.notification_id,
            kind=message.kind,
            channel=message.channel,
            application_id=message.application_id,
            status=message.status,
            code=message.failure_code,
            field=message.failure_field,
            attempts=message.attempts,
            failed_at=now.isoformat(),
            test_mode=test_mode,
        ),
    )
    if message.channel == "wechat" and message.failure_code != "lost":
        await plan_push(
            session,
            notification_id=message.notification_id,
            subject=message.subject,
            kind=message.kind,
            application_id=message.application_id,
            now=now,
            instead_of=message,
        )


async def apply_receipt(
    session: AsyncSession,
    *,
    out_id: str,
    biz_id: str | None,
    delivered: bool,
    code: str | None,
    settings: Settings,
    now: datetime,
) -> bool:
    """An SMS gateway's delivery receipt. False when no message matches it; a repeated or late
    receipt for a message already decided changes nothing."""
    message = await repository.message(session, out_id, lock=True)
    if message is None or message.channel != "sms":
        return False
    if biz_id and message.provider_ref and message.provider_ref != biz_id:
        return False
    if message.status != "sending":
        return True
    message.updated_at = now
    if delivered:
        await _delivered(session, message, now=now, test_mode=False)
    else:
        _failed_attempt(
            message,
            SendResult(
                outcome="permanent-failure",
                code=code or "FAILED",
                detail="短信网关回执：未送达",
            ),
        )
        await _gave_up(session, message, settings=settings, now=now, test_mode=False)
    return True


async def sweep(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    """Settle messages stuck in ``sending``; how many.

    * No answer recorded (the process died during the call): an SMS is sent again (the
      gateway de-duplicates on our message id, so the citizen gets one SMS); a WeChat message
      is not (WeChat has no such key: it may have arrived) and ends as a technical failure.
    * Accepted by the gateway but no receipt within ``notify_receipt_timeout_s``: technical
      failure, nothing resent.
    """
    stuck = await repository.stuck_sending(
        session,
        unanswered_before=now - timedelta(seconds=settings.notify_send_stuck_s),
        unreceipted_before=now - timedelta(seconds=settings.notify_receipt_timeout_s),
    )
    for message in stuck:
        message.status = "technical-failure"
        message.updated_at = now
        if message.provider_ref is not None:
            message.failure_code = "no-receipt"
            message.failure_detail = "短信网关未返回回执"
            await _gave_up(session, message, settings=settings, now=now, test_mode=False)
        elif message.channel == "sms" and message.attempts < settings.notify_max_attempts:
            message.failure_code = "lost"
            message.failure_detail = "发送过程中断，将重试"
            message.next_attempt_at = now
            message.sending_since = None
            await session.flush()
        else:
            message.failure_code = "lost"
            message.failure_detail = "发送过程中断，结果未知"
            await _gave_up(session, message, settings=settings, now=now, test_mode=False)
    return len(stuck)


# --- Context (stored as JSON, rendered later) ---------------------------------------------


def context_to_json(context: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(context)
    out["at"] = context["at"].isoformat()
    for key in _DATE_KEYS:
        if isinstance(context.get(key), date):
            out[key] = context[key].isoformat()
    certificate = context.get("certificate")
    if certificate is not None and isinstance(certificate.get("valid_until"), date):
        out["certificate"] = {**certificate, "valid_until": certificate["valid_until"].isoformat()}
    return out


def context_from_json(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Back from JSON: ISO strings to the dates and times the filters format (values that are
    already dates, as in a merged preview context, stay as they are)."""
    context = dict(stored)
    if isinstance(stored.get("at"), str):
        context["at"] = datetime.fromisoformat(stored["at"])
    for key in _DATE_KEYS:
        if isinstance(stored.get(key), str) and stored[key]:
            context[key] = date.fromisoformat(stored[key])
    certificate = stored.get("certificate")
    if isinstance(certificate, Mapping) and isinstance(certificate.get("valid_until"), str):
        context["certificate"] = {
            **certificate,
            "valid_until": date.fromisoformat(certificate["valid_until"]),
        }
    return context
