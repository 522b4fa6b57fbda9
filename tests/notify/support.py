"""Factories and fixtures for the notify service's tests on real PostgreSQL.

The dispatcher commits (it must: it calls out between its transactions), so these tests cannot
roll back at the connection level; instead each starts from empty notify tables (only these
tests and the platform's end-to-end test write to the ``notify`` schema).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from intake_service.events import (
    FORM_CONTEXT,
    HOLDER_CONTEXT,
    SUBJECT_CONTEXT,
    ApplicationSubmitted,
)
from notify_service import caches, delivery, recipients, template_versions
from notify_service.consumers import build_consumer
from notify_service.delivery import Channels, Dispatcher
from notify_service.models import Message, Notification, kit_tables, wechat_access_token
from notify_service.sms import SmsGatewayClient
from notify_service.templates import NotificationKind
from notify_service.wechat import WeChatClient
from sandbox import ELDERLY_ALLOWANCE
from sharing_service.events import CertificateIssued
from tests.fakes.sms import FakeSmsGateway, serve_fake_sms
from tests.fakes.wechat import FakeWeChat, serve_fake_wechat
from tests.infrastructure import Infrastructure, make_settings
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import Database
from wangban.events import Envelope, Event, envelope_for
from wangban.settings import Settings
from wangban.wechat import PostgresTokenStore

APPID = "wx1234567890abcdef"
APP_SECRET = "test-wechat-secret"
SMS_KEY = "test-sms-key"
SMS_SECRET = "test-sms-secret"
NOTIFY_TABLES = (
    "message",
    "notification",
    "subscription_consent",
    "recipient",
    "application_recipient",
    "early_event",
    "sms_daily_count",
    "wechat_access_token",
    "template",
    "outbox",
    "inbox",
)


def notify_settings(infrastructure: Infrastructure, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "notify_test_mode": False,
        "wechat_appid": APPID,
        "wechat_app_secret": APP_SECRET,
        "sms_access_key_id": SMS_KEY,
        "sms_access_key_secret": SMS_SECRET,
        "notify_http_timeout_s": 2.0,
        "notify_retry_backoff_s": 10.0,
    }
    values.update(overrides)
    return make_settings(infrastructure, **values)


@pytest.fixture
async def clean_notify(database: Database) -> AsyncIterator[Database]:
    async with database.engine.begin() as connection:
        await connection.execute(
            text("TRUNCATE " + ", ".join(f"notify.{t}" for t in NOTIFY_TABLES) + " CASCADE")
        )
    # The process's copies of templates and recipients went with the rows.
    caches.clear()
    yield database


@dataclass
class Clock:
    """The dispatcher's idea of now; tests move it forward instead of sleeping."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Providers:
    wechat: FakeWeChat
    sms: FakeSmsGateway


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    async with (
        serve_fake_wechat(appid=APPID, secret=APP_SECRET) as wechat,
        serve_fake_sms(access_key_id=SMS_KEY, secret=SMS_SECRET, sign_name="网办") as sms,
    ):
        yield Providers(wechat=wechat, sms=sms)


def real_dispatcher(
    database: Database,
    settings: Settings,
    providers: Providers,
    clock: Callable[[], datetime],
) -> Dispatcher:
    """The dispatcher with the real adapters, talking HTTP to the fake providers."""
    cipher = FieldCipher.from_settings(settings)
    return Dispatcher(
        database=database,
        settings=settings,
        channels=Channels(
            wechat=WeChatClient(
                base_url=providers.wechat.base_url,
                appid=APPID,
                secret=APP_SECRET,
                token_store=PostgresTokenStore(
                    database,
                    table=wechat_access_token,
                    appid=APPID,
                    cipher=cipher,
                    context="notify.wechat_token",
                ),
                timeout_s=settings.notify_http_timeout_s,
            ),
            sms=SmsGatewayClient(
                base_url=providers.sms.base_url,
                access_key_id=SMS_KEY,
                access_key_secret=SMS_SECRET,
                sign_name=settings.sms_sign_name,
                timeout_s=settings.notify_http_timeout_s,
            ),
        ),
        cipher=cipher,
        clock=clock,
    )


async def seed_templates(database: Database, settings: Settings) -> None:
    async with database.sessionmaker() as session, session.begin():
        await template_versions.seed_defaults(session, settings)


async def wechat_template_id(database: Database, kind: NotificationKind) -> str:
    async with database.sessionmaker() as session:
        template = await template_versions.current(session, kind=kind, channel="wechat")
        return str(template.body["template_id"])


async def citizen(
    database: Database,
    settings: Settings,
    *,
    openid: str | None = None,
    phone: str | None = None,
    fallback: str = "sms",
    consents: tuple[str, ...] = (),
) -> str:
    """An account with the given ways to reach it; returns its subject."""
    subject = f"u-{uuid.uuid4().hex[:10]}"
    async with database.sessionmaker() as session, session.begin():
        if openid is not None:
            await recipients.bind_wechat(session, subject=subject, openid=openid)
        await recipients.set_preferences(
            session,
            subject=subject,
            wechat_enabled=None,
            fallback="inbox" if fallback == "inbox" else "sms",
            phone=phone,
            cipher=FieldCipher.from_settings(settings),
            blind_index=BlindIndex.from_settings(settings),
        )
        for template_id in consents:
            await recipients.record_subscriptions(
                session, subject=subject, results={template_id: "accept"}, now=datetime.now(UTC)
            )
    return subject


async def application_of(
    database: Database,
    subject: str,
    *,
    item_name: str = "高龄老人津贴申领",
    name_masked: str = "张*",
) -> str:
    application_id = str(uuid.uuid4())
    async with database.sessionmaker() as session, session.begin():
        await delivery.record_application(
            session,
            application_id=application_id,
            subject=subject,
            item_code=ELDERLY_ALLOWANCE,
            item_name=item_name,
            applicant_name_masked=name_masked,
        )
    return application_id


async def tell(
    database: Database,
    application_id: str,
    *,
    kind: NotificationKind = NotificationKind.CERTIFICATE_ISSUED,
    event_id: str | None = None,
    now: datetime | None = None,
    **facts: Any,
) -> str | None:
    """What a consumed event does: the notification and its push message, committed."""
    at = now or datetime.now(UTC)
    if kind is NotificationKind.CERTIFICATE_ISSUED and "certificate" not in facts:
        facts["certificate"] = {"type_name": "高龄津贴发放通知书", "valid_until": None}
    async with database.sessionmaker() as session, session.begin():
        return await delivery.notify(
            session,
            event_id=event_id or str(uuid.uuid4()),
            kind=kind,
            application_id=application_id,
            at=at,
            facts=facts,
            now=at,
        )


async def messages_of(database: Database, notification_id: str) -> list[Message]:
    async with database.sessionmaker() as session:
        rows = await session.scalars(
            select(Message)
            .where(Message.notification_id == notification_id)
            .order_by(Message.created_at)
        )
        return list(rows)


async def one_message(database: Database, notification_id: str, channel: str) -> Message:
    [message] = [m for m in await messages_of(database, notification_id) if m.channel == channel]
    return message


async def notifications_of(database: Database, subject: str) -> list[Notification]:
    async with database.sessionmaker() as session:
        rows = await session.scalars(select(Notification).where(Notification.subject == subject))
        return list(rows)


async def published(database: Database) -> list[Envelope]:
    """What the notify service wrote to its outbox, oldest first."""
    outbox = kit_tables.outbox
    async with database.sessionmaker() as session:
        rows = await session.execute(select(outbox.c.envelope).order_by(outbox.c.seq))
        return [Envelope.model_validate(row[0]) for row in rows]


async def count_rows(database: Database, model: type[Any]) -> int:
    async with database.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def drain(dispatcher: Dispatcher, *, rounds: int = 5) -> None:
    """Run the dispatcher until nothing is due (bounded)."""
    for _ in range(rounds):
        if not await dispatcher.run_once():
            return


ID_NUMBER = "440101194001011234"


def submitted(settings: Settings, *, subject: str, name: str = "张三丰") -> ApplicationSubmitted:
    cipher = FieldCipher.from_settings(settings)
    return ApplicationSubmitted(
        application_id=str(uuid.uuid4()),
        item_version_id=str(uuid.uuid4()),
        item_code=ELDERLY_ALLOWANCE,
        item_name="高龄老人津贴申领",
        department="东莞市民政局",
        channel="wechat",
        applicant_kind="person",
        applicant_subject_enc=cipher.encrypt(subject, context=SUBJECT_CONTEXT),
        applicant_id_enc=cipher.encrypt(ID_NUMBER, context=HOLDER_CONTEXT),
        applicant_name_enc=cipher.encrypt(name, context=HOLDER_CONTEXT),
        form_enc=cipher.encrypt('{"bank_account": "6222"}', context=FORM_CONTEXT),
        submitted_at=datetime.now(UTC).isoformat(),
    )


def certificate_issued(
    application_id: str, *, certificate_id: str, at: str, valid_until: str | None = None
) -> CertificateIssued:
    """The 高龄津贴 notice issued for ``application_id``, as sharing announces it."""
    return CertificateIssued(
        certificate_id=certificate_id,
        type_code="elderly_allowance_notice",
        type_name="高龄津贴发放通知书",
        issuer_code="441900",
        application_id=application_id,
        holder_kind="person",
        issued_at=at,
        valid_until=valid_until,
    )


async def handle(database: Database, settings: Settings, event: Event) -> Envelope:
    consumer = build_consumer(settings)
    _, handler = consumer.handlers[event.event_type]
    envelope = envelope_for(event, source="/tests")
    concerns = consumer.concerns.get(event.event_type)
    if concerns is not None and not concerns(event):
        return envelope  # passed over, as the running consumer does
    async with database.sessionmaker() as session, session.begin():
        await handler(session, event=event, envelope=envelope)
    return envelope
