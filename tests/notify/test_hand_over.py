"""What a notification costs with the dispatcher running in the process, as the service runs
it: the message is created ``sending`` and handed over in memory when its transaction commits
(never when it rolls back), sent with no claim and recorded in one statement; a stopping
dispatcher gives back what it did not send; retries wake it at their time; idle, it runs one
statement per interval; the notification reads no configuration once the process has it, and a
template or preference changed in the process is used at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from notify_service import delivery, recipients, template_versions
from notify_service.delivery import Dispatcher
from notify_service.models import Message
from notify_service.templates import NotificationKind
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from tests.notify.support import (
    Clock,
    Providers,
    application_of,
    citizen,
    clean_notify,
    messages_of,
    notify_settings,
    one_message,
    providers,
    published,
    real_dispatcher,
    seed_templates,
    tell,
    wechat_template_id,
)
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import Database
from wangban.settings import Settings

__all__ = ["clean_notify", "providers"]  # fixtures

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
ISSUED = NotificationKind.CERTIFICATE_ISSUED


@pytest.fixture
async def platform(
    clean_notify: Database, infrastructure: Infrastructure
) -> tuple[Database, Settings]:
    settings = notify_settings(infrastructure, notify_dispatch_interval_s=3600)
    await seed_templates(clean_notify, settings)
    return clean_notify, settings


@pytest.fixture
async def running(
    platform: tuple[Database, Settings], providers: Providers
) -> AsyncIterator[Dispatcher]:
    """The dispatcher as the running service has it: taking this process's messages."""
    database, settings = platform
    dispatcher = real_dispatcher(database, settings, providers, Clock())
    dispatcher.attach()
    try:
        await dispatcher.serve_once()  # the first round polls once; the next ones wait
        yield dispatcher
    finally:
        await dispatcher.close()


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Connection, _cursor: Any, text: str, *_: Any) -> None:
        seen.append(" ".join(text.split()))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _token(statement: str) -> bool:
    return "wechat_access_token" in statement or "advisory" in statement


async def test_a_message_is_sent_when_its_transaction_commits_with_no_claim(
    platform: tuple[Database, Settings], providers: Providers, running: Dispatcher
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(database, settings, openid=OPENID, consents=(template_id,))
    application = await application_of(database, subject)

    notification = await tell(database, application)
    assert notification
    message = await one_message(database, notification, "wechat")
    # Taken at creation: no other dispatcher's claim can take it.
    assert (message.status, message.attempts, message.next_attempt_at) == ("sending", 1, None)

    with statements(database) as sent_with:
        assert await running.serve_once() == 1
    [sent] = providers.wechat.sent
    assert sent["touser"] == OPENID and sent["template_id"] == template_id
    # No claim, no reading back: WeChat's answer and the event it makes in one statement
    # (besides fetching WeChat's access token, the first time).
    [recorded] = [s for s in sent_with if not _token(s)]
    assert recorded.startswith("WITH delivered AS (UPDATE notify.message")
    assert (await one_message(database, notification, "wechat")).status == "delivered"
    [delivered] = await published(database)
    assert delivered.type.endswith("message.delivered.v1")
    assert delivered.data["message_id"] == message.id and delivered.data["attempts"] == 1


async def test_nothing_is_handed_over_from_a_transaction_that_rolls_back(
    platform: tuple[Database, Settings], running: Dispatcher
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(database, settings, openid=OPENID, consents=(template_id,))
    application = await application_of(database, subject)

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned):
        async with database.sessionmaker() as session, session.begin():
            created = await delivery.notify(
                session,
                event_id=str(uuid.uuid4()),
                kind=ISSUED,
                application_id=application,
                at=datetime.now(UTC),
                facts={"certificate": {"type_name": "高龄津贴发放通知书", "valid_until": None}},
                now=datetime.now(UTC),
            )
            assert created
            raise Abandoned
    async with database.sessionmaker() as session:
        assert list(await session.scalars(select(Message))) == []
    assert await running.run_once() == 0  # nothing handed over, nothing due


async def test_a_stopping_dispatcher_gives_back_what_it_did_not_send(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(database, settings, openid=OPENID, consents=(template_id,))
    stopping = real_dispatcher(database, settings, providers, Clock())
    stopping.attach()
    notification = await tell(database, await application_of(database, subject))
    assert notification
    await stopping.close()
    given_back = await one_message(database, notification, "wechat")
    assert (given_back.status, given_back.attempts) == ("created", 0)
    assert given_back.next_attempt_at is not None

    other = real_dispatcher(database, settings, providers, Clock())
    try:
        assert await other.run_once() == 1
    finally:
        await other.close()
    message = await one_message(database, notification, "wechat")
    assert (message.status, message.attempts) == ("delivered", 1)
    assert len(providers.wechat.sent) == 1


async def test_a_message_committed_after_its_dispatcher_stopped_is_given_back(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(database, settings, openid=OPENID, consents=(template_id,))
    application = await application_of(database, subject)
    stopping = real_dispatcher(database, settings, providers, Clock())
    stopping.attach()
    async with database.sessionmaker() as session, session.begin():
        notification = await delivery.notify(
            session,
            event_id=str(uuid.uuid4()),
            kind=ISSUED,
            application_id=application,
            at=datetime.now(UTC),
            facts={"certificate": {"type_name": "高龄津贴发放通知书", "valid_until": None}},
            now=datetime.now(UTC),
        )
        assert notification
        # The service stops while the consumer's transaction is still open.
        closing = asyncio.create_task(stopping.close())
        await asyncio.sleep(0)
    await closing

    async def given_back() -> bool:
        message = await one_message(database, notification, "wechat")
        return (message.status, message.attempts) == ("created", 0)

    await eventually(given_back, timeout_s=5)
    assert providers.wechat.send_calls == 0


async def test_a_retry_wakes_the_dispatcher_at_its_time_not_at_the_poll(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(
        database, settings, openid=OPENID, fallback="inbox", consents=(template_id,)
    )
    clock = Clock()
    dispatcher = real_dispatcher(database, settings, providers, clock)
    dispatcher.attach()
    try:
        await dispatcher.serve_once()  # polled: the next poll is an hour away
        providers.wechat.errcode = -1  # busy, once
        notification = await tell(database, await application_of(database, subject))
        assert notification
        await dispatcher.serve_once()
        busy = await one_message(database, notification, "wechat")
        assert busy.status == "temporary-failure" and busy.next_attempt_at is not None
        providers.wechat.errcode = None
        clock.now = busy.next_attempt_at
        # Due now: the round does not wait for the hour's poll.
        await asyncio.wait_for(dispatcher.serve_once(), timeout=5)
    finally:
        await dispatcher.close()
    message = await one_message(database, notification, "wechat")
    assert (message.status, message.attempts) == ("delivered", 2)
    assert providers.wechat.send_calls == 2


async def test_idle_the_dispatcher_runs_one_statement_per_interval(
    clean_notify: Database, infrastructure: Infrastructure, providers: Providers
) -> None:
    settings = notify_settings(infrastructure, notify_dispatch_interval_s=0.1)
    dispatcher = real_dispatcher(clean_notify, settings, providers, delivery.now_utc)
    started = time.monotonic()
    try:
        with statements(clean_notify) as idle:
            for _ in range(5):
                assert await dispatcher.serve_once() == 0
    finally:
        await dispatcher.close()
    assert time.monotonic() - started >= 0.35
    assert len(idle) == 5 and all(s.startswith("UPDATE notify.message") for s in idle)


async def test_a_warm_process_writes_a_notification_and_its_push_in_one_statement(
    platform: tuple[Database, Settings], running: Dispatcher
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(
        database, settings, openid=OPENID, fallback="inbox", consents=(template_id, template_id)
    )
    application = await application_of(database, subject)
    assert await tell(database, application)  # reads what the process did not have yet
    with statements(database) as second:
        notification = await tell(database, application)
    assert notification
    # The notification, the consent reserved and the WeChat message: one statement, nothing
    # read (whom the application concerns, the recipient and the templates are kept).
    assert len(second) == 1 and second[0].startswith("WITH notification_written AS (INSERT")
    assert [m.channel for m in await messages_of(database, notification)] == ["wechat"]
    assert await running.serve_once() == 2


async def test_a_preference_or_template_changed_in_the_process_is_used_at_once(
    platform: tuple[Database, Settings], running: Dispatcher
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(
        database,
        settings,
        openid=OPENID,
        phone="13912345678",
        consents=(template_id, template_id, template_id),
    )
    application = await application_of(database, subject)
    first = await tell(database, application)
    assert first and [m.channel for m in await messages_of(database, first)] == ["wechat"]

    # WeChat turned off: the next notice goes by SMS.
    async with database.sessionmaker() as session, session.begin():
        await recipients.set_preferences(
            session,
            subject=subject,
            wechat_enabled=False,
            fallback=None,
            phone=None,
            cipher=FieldCipher.from_settings(settings),
            blind_index=BlindIndex.from_settings(settings),
        )
    second = await tell(database, application)
    assert second and [m.channel for m in await messages_of(database, second)] == ["sms"]

    # On again, and a new SMS-less WeChat version saved: the next message names it.
    async with database.sessionmaker() as session, session.begin():
        await recipients.set_preferences(
            session,
            subject=subject,
            wechat_enabled=True,
            fallback=None,
            phone=None,
            cipher=FieldCipher.from_settings(settings),
            blind_index=BlindIndex.from_settings(settings),
        )
        current = await template_versions.current(session, kind=ISSUED, channel="wechat")
        saved, made = await template_versions.save(
            session,
            kind=ISSUED,
            channel="wechat",
            body={**current.body, "page": "pages/wallet/index"},
            by="admin",
            settings=settings,
        )
    assert made
    third = await tell(database, application)
    assert third
    message = await one_message(database, third, "wechat")
    assert message.template_version_id == saved.id
    await running.serve_once()
