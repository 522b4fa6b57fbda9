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
* **Sending right after the commit.** Where a dispatcher runs in the process (the service's
  background worker), a message is created ``sending`` in the transaction that creates its
  notification, so no other dispatcher claims it, and handed to that dispatcher in memory when
  the transaction commits (never if it rolls back): no claim transaction, no poll, no reading
  back what was just written. The dispatcher's claim is left for what is due later: retries,
  messages created where no dispatcher runs, and those given back by a dispatcher that
  stopped; a process that dies with messages handed over leaves them ``sending``, which the
  sweeper settles as it settles a send that died mid-call.

Services flush, never commit: the consumer's handler transaction, the request's unit of work
or the dispatcher's own statements commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from notify_service import caches, repository, templates
from notify_service.channels import SendResult, SmsChannel, WeChatChannel
from notify_service.events import MessageDelivered, MessageFailed, outbox
from notify_service.models import Message
from wangban.crypto import DecryptionError, FieldCipher
from wangban.db import Database
from wangban.events import Envelope, envelope_for, uuid7
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
    """Remember whom an application's later events concern (they carry only its id), and tell
    what arrived before this (:class:`notify_service.models.EarlyEvent`)."""
    target = caches.ApplicationTarget(
        application_id=application_id,
        subject=subject,
        item_code=item_code,
        item_name=item_name or item_code,
        applicant_name_masked=applicant_name_masked,
    )
    # A separate statement first: the one below reads the parked events with the snapshot it
    # starts with, so an event parked while it waited for the lock would not be among them.
    await repository.lock_application(session, application_id)
    early = await repository.save_application_recipient(
        session,
        application_id=target.application_id,
        subject=target.subject,
        item_code=target.item_code,
        item_name=target.item_name,
        applicant_name_masked=target.applicant_name_masked,
    )
    caches.application_recorded(session, target)
    for event in early:
        facts = context_from_json(event.context)
        await notify(
            session,
            event_id=event.event_id,
            kind=templates.NotificationKind(event.kind),
            application_id=application_id,
            at=facts.pop("at"),
            facts=facts,
            now=now_utc(),
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
    """Store the inbox notification for ``event_id`` and its push message. Returns its id, or
    None when nobody is known for the application or the event was handled before."""
    target = await caches.application_target(session, application_id)
    if target is None:
        # Read before the submission that says whom to tell (another topic: after an outage
        # either may come first), or an application nobody can be told about (no account, a
        # bundle's member): it waits for the submission, and is dropped if none comes. Under
        # the application's lock, looked for again: the submission may have been recorded by
        # a transaction that committed meanwhile (it then takes the parked events it sees).
        await repository.lock_application(session, application_id)
        target = await caches.application_target(session, application_id)
    if target is None:
        await repository.park_early_event(
            session,
            event_id=event_id,
            application_id=application_id,
            kind=kind.value,
            context=context_to_json({"at": at, **facts}),
            now=now,
        )
        log.info("no recipient yet for application %s: %s waits", application_id, kind.value)
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
        "rating": False,
        **facts,
    }
    title, body = await _inbox_text(session, kind=kind, context=context)
    notification_id = str(uuid7())
    stored = context_to_json(context)
    created = await _push(
        session,
        notification={
            "id": notification_id,
            "event_id": event_id,
            "subject": target.subject,
            "kind": kind.value,
            "application_id": application_id,
            "title": title,
            "body": body,
            "context": stored,
            "created_at": now,
        },
        notification_id=notification_id,
        subject=target.subject,
        kind=kind.value,
        application_id=application_id,
        context=stored,
        now=now,
    )
    return notification_id if created else None


async def _inbox_text(
    session: AsyncSession, *, kind: templates.NotificationKind, context: Mapping[str, Any]
) -> tuple[str, str]:
    template = await caches.current_template(session, kind=kind.value, channel="inbox")
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


async def _push(
    session: AsyncSession,
    *,
    notification: dict[str, Any] | None,
    notification_id: str,
    subject: str,
    kind: str,
    application_id: str | None,
    context: dict[str, Any],
    now: datetime,
    instead_of: str | None = None,
) -> bool:
    """Write the notification (unless ``notification`` is None: it exists) and its push
    message, on the first channel that may carry it, in one statement. False when the
    notification existed already (then nothing is written).

    WeChat needs the account's openid, the citizen not to have turned WeChat messages off, a
    template for the kind, and an unused one-time consent for that template (reserved for this
    message). SMS needs the citizen to allow it and a number. ``instead_of`` is the WeChat
    message an SMS replaces (then only SMS is considered).
    """
    reach = await caches.reach(session, subject)
    wechat_template = sms_template = None
    if reach is not None:
        if instead_of is None and reach.openid and reach.wechat_enabled:
            wechat_template = await caches.current_template(session, kind=kind, channel="wechat")
        if reach.fallback == "sms" and reach.has_phone:
            sms_template = await caches.current_template(session, kind=kind, channel="sms")
    dispatcher = _running
    rows = {
        channel: _message_row(
            notification_id=notification_id,
            subject=subject,
            kind=kind,
            application_id=application_id,
            channel=channel,
            template_version_id=template.id,
            handed=dispatcher is not None,
            fallback_of=instead_of if channel == "sms" else None,
            now=now,
        )
        for channel, template in (("wechat", wechat_template), ("sms", sms_template))
        if template is not None
    }
    created, message_id = await repository.notify_and_push(
        session,
        notification=notification,
        wechat=rows.get("wechat"),
        consent_template_id=(
            str(wechat_template.body["template_id"]) if wechat_template is not None else None
        ),
        sms=rows.get("sms"),
        now=now,
    )
    if message_id is not None and dispatcher is not None:
        assert reach is not None
        channel = "wechat" if message_id == rows.get("wechat", {}).get("id") else "sms"
        template = wechat_template if channel == "wechat" else sms_template
        assert template is not None
        outgoing = Outgoing(
            message_id=message_id,
            notification_id=notification_id,
            subject=subject,
            kind=kind,
            application_id=application_id,
            channel=channel,
            template=template,
            context=context,
            openid=reach.openid,
            attempts=1,
            created_at=now,
        )
        caches.after_commit(session, lambda: dispatcher.hand_over(outgoing))
    return created


def _message_row(
    *,
    notification_id: str,
    subject: str,
    kind: str,
    application_id: str | None,
    channel: str,
    template_version_id: str,
    handed: bool,
    fallback_of: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A new message. ``handed``: to this process's dispatcher when the transaction commits,
    so it is taken for its first attempt now (``sending``), as a claim would take it."""
    return {
        "id": str(uuid7()),
        "notification_id": notification_id,
        "subject": subject,
        "kind": kind,
        "application_id": application_id,
        "channel": channel,
        "template_version_id": template_version_id,
        "status": "sending" if handed else "created",
        "attempts": 1 if handed else 0,
        "next_attempt_at": None if handed else now,
        "sending_since": now if handed else None,
        "fallback_of": fallback_of,
        "created_at": now,
        "updated_at": now,
    }


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
class Outgoing:
    """A message taken for sending (``sending``, this attempt counted) and what sending it
    needs: the notification's context and the template version, so nothing is read back."""

    message_id: str
    notification_id: str
    subject: str
    kind: str
    application_id: str | None
    channel: str
    template: caches.TemplateVersion
    context: dict[str, Any]
    """As stored (JSON)."""
    openid: str | None
    """WeChat's address (an SMS reads the number when it goes)."""
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class _Prepared:
    outgoing: Outgoing
    send: Callable[[], Awaitable[SendResult]] | None
    """The call to make, or None when the answer is known without one (``decided``)."""
    decided: SendResult | None = None


_running: Dispatcher | None = None
"""The dispatcher running in this process, which messages are handed to after commit."""


class Dispatcher:
    """Sends messages: those handed over by the transactions that created them, as soon as
    they commit, and those due (retries; messages nobody handed over), claimed with SKIP
    LOCKED. Calls the channels with no transaction open, then records each answer: a delivery
    in one statement (the status guard and the ``message.delivered`` event together), the rest
    in a short transaction of its own.

    Several dispatchers (workers, replicas) can run at once: claims skip locked rows, and a
    handed-over message is ``sending`` from its creation, which no claim takes.
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
        self._handed: list[Outgoing] = []
        self._wake = asyncio.Event()
        self._poll_at: datetime | None = None
        """When the next claim round is due (None: at once)."""
        self._retry_at: datetime | None = None
        """The earliest retry this dispatcher scheduled, if before the next poll."""
        self._stopped = False
        self._late: set[asyncio.Task[None]] = set()

    # --- in memory ---------------------------------------------------------------------

    def hand_over(self, outgoing: Outgoing) -> None:
        """A message created ``sending`` for this dispatcher, committed: send it now."""
        if self._stopped:
            # Created for it before it stopped, committed after: due again for whichever
            # dispatcher claims first, rather than ``sending`` until the sweeper.
            task = asyncio.get_running_loop().create_task(self._give_back([outgoing]))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return
        self._handed.append(outgoing)
        self._wake.set()

    def due_at(self, at: datetime) -> None:
        """A retry is due at ``at``: claim then rather than at the next poll."""
        if self._retry_at is None or at < self._retry_at:
            self._retry_at = at
        self._wake.set()

    def attach(self) -> None:
        """Take the messages created in this process from now on."""
        global _running
        _running = self

    async def detach(self) -> None:
        """Take no more, and give back what was handed over and not sent: due again, for
        whichever dispatcher claims first."""
        global _running
        if _running is self:
            _running = None
        self._stopped = True
        handed, self._handed = self._handed, []
        await self._give_back(handed)
        if self._late:
            await asyncio.gather(*self._late)

    async def _give_back(self, handed: Sequence[Outgoing]) -> None:
        if not handed:
            return
        try:
            async with self._autocommit() as connection:
                await repository.give_back(
                    connection, message_ids=[h.message_id for h in handed], now=self.clock()
                )
        except Exception:
            # The sweeper settles them (as a send that died mid-call).
            log.exception("could not give back %d handed-over messages", len(handed))

    # --- rounds ------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Send what was handed over, then claim and send what is due now; how many."""
        self._wake.clear()
        done = await self._send_handed()
        return done + await self._send_due()

    async def serve_once(self) -> int:
        """The background loop's round: wait until something was handed over, a retry this
        dispatcher scheduled is due, or the poll interval (``notify_dispatch_interval_s``:
        retries of other processes, recoveries) has passed; then send. Idle, it runs one
        statement per interval."""
        await self._wait()
        self._wake.clear()
        done = await self._send_handed()
        now = self.clock()
        if (
            self._poll_at is None
            or now >= self._poll_at
            or (self._retry_at is not None and now >= self._retry_at)
        ):
            # Set first: a round that fails is not tried again in a tight loop.
            self._poll_at = now + timedelta(seconds=self.interval_s)
            if self._retry_at is not None and self._retry_at <= now:
                self._retry_at = None
            claimed = await self._send_due()
            if claimed >= self.settings.notify_dispatch_batch:
                self._poll_at = None  # more are due: the next round claims at once
            done += claimed
        return done

    async def _wait(self) -> None:
        if self._handed:
            return
        now = self.clock()
        deadline = self._poll_at or now
        if self._retry_at is not None and self._retry_at < deadline:
            deadline = self._retry_at
        timeout = (deadline - now).total_seconds()
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def close(self) -> None:
        await self.detach()
        await self.channels.close()

    async def _send_handed(self) -> int:
        handed, self._handed = self._handed, []
        return await self._send(handed) if handed else 0

    async def _send_due(self) -> int:
        now = self.clock()
        async with self.database.read_sessionmaker() as session:
            # Autocommit: the claim is one statement and commits on its own.
            due = await repository.claim_due(
                session, now=now, limit=self.settings.notify_dispatch_batch
            )
            if not due:
                return 0
            stored = await repository.notifications(session, [m.notification_id for m in due])
            items = []
            for message in due:
                template = await caches.template_version(session, message.template_version_id)
                recipient = (
                    await repository.fresh_recipient(session, message.subject)
                    if message.channel == "wechat"
                    else None
                )
                assert template is not None  # a message's version is never deleted
                items.append(
                    Outgoing(
                        message_id=message.id,
                        notification_id=message.notification_id,
                        subject=message.subject,
                        kind=message.kind,
                        application_id=message.application_id,
                        channel=message.channel,
                        template=template,
                        context=stored[message.notification_id].context,
                        openid=recipient.openid if recipient is not None else None,
                        attempts=message.attempts,
                        created_at=message.created_at,
                    )
                )
        return await self._send(items)

    async def _send(self, items: Sequence[Outgoing]) -> int:
        # What needs the database (an SMS's number and daily count) is read before any call,
        # in autocommit: nothing is held while the channels answer.
        async with self.database.read_sessionmaker() as session:
            prepared = [await self._prepare(session, item) for item in items]
        results = await asyncio.gather(*(self._call(p) for p in prepared))
        for item, result in zip(items, results, strict=True):
            await self._record(item, result)
        return len(items)

    async def _call(self, prepared: _Prepared) -> SendResult:
        if prepared.send is None:
            assert prepared.decided is not None
            return prepared.decided
        try:
            return await prepared.send()
        except Exception as exc:
            # A channel answers with a SendResult; an exception is our bug or the library's.
            # The message must not stay "sending" for it: record a technical failure (retried).
            log.exception("channel raised while sending message %s", prepared.outgoing.message_id)
            return SendResult(outcome="technical-failure", code="error", detail=type(exc).__name__)

    async def _record(self, item: Outgoing, result: SendResult) -> None:
        now = self.clock()
        delivered = result.outcome == "delivered" or (
            # Test mode has no gateway to send a receipt: a simulated one at once.
            result.outcome == "accepted" and self.channels.test_mode
        )
        if delivered:
            event = MessageDelivered(
                message_id=item.message_id,
                notification_id=item.notification_id,
                kind=item.kind,
                channel=item.channel,
                application_id=item.application_id,
                attempts=item.attempts,
                delivered_at=now.isoformat(),
                test_mode=self.channels.test_mode,
            )
            envelope = envelope_for(event, source=outbox.source)
            key = event.aggregate_key()
            async with self._autocommit() as connection:
                written = await repository.record_delivered(
                    connection,
                    message_id=item.message_id,
                    provider_ref=result.provider_ref,
                    now=now,
                    event_row=_outbox_row(envelope, topic=event.topic, key=key),
                    returning=outbox.returning(key),
                )
            if written is not None:
                # Committed with the statement (autocommit): the relay here sends it now.
                outbox.committed(
                    envelope=envelope, topic=event.topic, key=key, seq=written[0], older=written[1]
                )
            return
        if result.outcome == "accepted":
            async with self._autocommit() as connection:
                await repository.record_accepted(
                    connection,
                    message_id=item.message_id,
                    provider_ref=result.provider_ref,
                    now=now,
                )
            return
        async with self.database.sessionmaker() as session, session.begin():
            retry_at = await record_answer(
                session,
                message_id=item.message_id,
                result=result,
                settings=self.settings,
                now=now,
                test_mode=self.channels.test_mode,
            )
        if retry_at is not None:
            self.due_at(retry_at)

    @contextlib.asynccontextmanager
    async def _autocommit(self) -> Any:
        async with self.database.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    async def _prepare(self, session: AsyncSession, item: Outgoing) -> _Prepared:
        context = context_from_json(item.context)
        try:
            if item.channel == "wechat":
                return self._prepare_wechat(item, context)
            return await self._prepare_sms(session, item, context)
        except templates.RenderedValueInvalid as invalid:
            return _decided(
                item,
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
                item,
                SendResult(outcome="permanent-failure", code="template", detail="模板版本无法读取"),
            )
        except DecryptionError:
            # The number was encrypted with a key no longer configured: retried in case the
            # key comes back, and bounded like any technical failure.
            return _decided(
                item,
                SendResult(outcome="technical-failure", code="key", detail="手机号码无法解密"),
            )

    def _prepare_wechat(self, item: Outgoing, context: dict[str, Any]) -> _Prepared:
        if not item.openid:
            return _decided(item, _no_address("微信账号未绑定"))
        template = templates.WeChatTemplateBody.model_validate(item.template.body)
        data = templates.render_wechat(template, context)
        page = templates.render_wechat_page(template, context)
        openid = item.openid

        def send() -> Awaitable[SendResult]:
            return self.channels.wechat.send_subscription(
                openid=openid,
                template_id=template.template_id,
                page=page,
                data=data,
                miniprogram_state=self.settings.wechat_miniprogram_state,
                lang=self.settings.wechat_lang,
            )

        return _Prepared(outgoing=item, send=send)

    async def _prepare_sms(
        self, session: AsyncSession, item: Outgoing, context: dict[str, Any]
    ) -> _Prepared:
        # The number as it is now, never a cached copy: one the citizen removed gets nothing.
        recipient = await repository.fresh_recipient(session, item.subject)
        if recipient is None or not recipient.phone_enc or not recipient.phone_index:
            return _decided(item, _no_address("未留手机号码"))
        template = templates.SmsTemplateBody.model_validate(item.template.body)
        rendered = templates.render_sms(
            template,
            context,
            sign_name=self.settings.sms_sign_name,
            max_chars=self.settings.sms_max_chars,
        )
        if item.attempts == 1 and not await repository.count_sms(
            session,
            phone_index=recipient.phone_index,
            day=self.clock().astimezone(BEIJING).date(),
            limit=self.settings.sms_daily_limit_per_number,
        ):
            # Counted once per message (a retry is the same SMS, de-duplicated by out_id).
            return _decided(
                item,
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
                out_id=item.message_id,
            )

        return _Prepared(outgoing=item, send=send)


class DispatchWorker:
    """The dispatcher as the service runs it (a kit ``BackgroundWorker``): it takes the
    messages created in this process from its first round on and waits for work inside each
    round (:meth:`Dispatcher.serve_once`), so the runtime calls it again at once."""

    name = "dispatcher"
    interval_s = 0.0

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._attached = False

    async def run_once(self) -> int:
        if not self._attached:
            self.dispatcher.attach()
            self._attached = True
        return await self.dispatcher.serve_once()

    async def close(self) -> None:
        await self.dispatcher.close()


def _decided(item: Outgoing, result: SendResult) -> _Prepared:
    return _Prepared(outgoing=item, send=None, decided=result)


def _no_address(detail: str) -> SendResult:
    return SendResult(outcome="permanent-failure", code="no-address", detail=detail)


def _outbox_row(envelope: Envelope, *, topic: str, key: str) -> dict[str, Any]:
    """The outbox row of ``envelope``, as :meth:`wangban.outbox.Outbox.write` writes it, for a
    statement that writes it together with the change it reports."""
    return {
        "event_id": envelope.id,
        "topic": topic,
        "key": key,
        "event_type": envelope.type,
        "envelope": envelope.model_dump(mode="json", exclude_none=True),
    }


def _due_after_commit(session: AsyncSession, at: datetime) -> None:
    """A message is due at ``at``: once the session commits, the dispatcher of this process
    (if any) claims it then."""
    dispatcher = _running
    if dispatcher is not None:
        caches.after_commit(session, lambda: dispatcher.due_at(at))


# --- Answers, receipts and the sweeper ----------------------------------------------------


async def record_answer(
    session: AsyncSession,
    *,
    message_id: str,
    result: SendResult,
    settings: Settings,
    now: datetime,
    test_mode: bool = False,
) -> datetime | None:
    """Record what the channel answered for a ``sending`` message (anything else: ignored).
    Returns when it is to be tried again, if it is."""
    message = await repository.message(session, message_id, lock=True)
    if message is None or message.status != "sending":
        return None  # the sweeper or a receipt decided meanwhile: the first answer stands
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
            return message.next_attempt_at
        await _gave_up(session, message, settings=settings, now=now, test_mode=test_mode)
    else:  # permanent-failure, no-consent
        _failed_attempt(message, result)
        if result.outcome == "no-consent":
            message.status = "permanent-failure"
            message.failure_code = result.code or "43101"
        await _gave_up(session, message, settings=settings, now=now, test_mode=test_mode)
    return None


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
        notification = await repository.notification(session, message.notification_id)
        assert notification is not None
        await _push(
            session,
            notification=None,
            notification_id=message.notification_id,
            subject=message.subject,
            kind=message.kind,
            application_id=message.application_id,
            context=notification.context,
            now=now,
            instead_of=message.id,
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


EARLY_EVENT_KEPT = timedelta(days=7)
"""How long an event waits for its application's submission (``EarlyEvent``): far longer than
any outage or replay; what still waits then concerns nobody this service can tell."""


async def drop_stale_early_events(session: AsyncSession, *, now: datetime) -> int:
    """Drop the events that waited for a submission longer than :data:`EARLY_EVENT_KEPT`."""
    return await repository.drop_early_events(session, arrived_before=now - EARLY_EVENT_KEPT)


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
            _due_after_commit(session, now)
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
    # Notifications stored before the rating travelled with the final notice have no flag.
    context = {"rating": False, **stored}
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
