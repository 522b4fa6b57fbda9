"""Delivery end to end inside the notify service: a notification is stored, pushed on the right
channel through the real adapters to local WeChat and SMS servers, and every answer moves the
message the way a citizen (and a partner reading our events) relies on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from notify_service import delivery, repository, template_versions
from notify_service.models import Message, Notification, Template
from notify_service.templates import NotificationKind
from tests.infrastructure import Infrastructure
from tests.notify.support import (
    Clock,
    Providers,
    application_of,
    citizen,
    clean_notify,
    count_rows,
    drain,
    messages_of,
    notifications_of,
    notify_settings,
    one_message,
    providers,
    published,
    real_dispatcher,
    seed_templates,
    tell,
    wechat_template_id,
)
from wangban.db import Database
from wangban.settings import Settings

__all__ = ["clean_notify", "providers"]  # fixtures

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
PHONE = "13912345678"
ISSUED = NotificationKind.CERTIFICATE_ISSUED


@pytest.fixture
async def platform(
    clean_notify: Database, infrastructure: Infrastructure
) -> tuple[Database, Settings]:
    settings = notify_settings(infrastructure)
    await seed_templates(clean_notify, settings)
    return clean_notify, settings


async def test_a_subscribed_citizen_gets_one_wechat_message_per_consent(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(database, settings, openid=OPENID, phone=PHONE, consents=(template_id,))
    application = await application_of(database, subject)
    first = await tell(database, application)
    second = await tell(database, application)
    assert first and second
    dispatcher = real_dispatcher(database, settings, providers, Clock())
    await drain(dispatcher)
    await dispatcher.close()

    [sent] = providers.wechat.sent
    assert sent["touser"] == OPENID and sent["template_id"] == template_id
    assert all(isinstance(v["value"], str) and v["value"] for v in sent["data"].values())
    assert (await one_message(database, first, "wechat")).status == "delivered"
    # The one consent went to the first message: the second goes by SMS instead.
    assert [m.channel for m in await messages_of(database, second)] == ["sms"]
    assert len(providers.sms.sent) == 1 and providers.sms.sent[0]["phone_number"] == PHONE
    async with database.sessionmaker() as session:
        assert await repository.unconsumed_consents(session, subject) == {}
    delivered = [e for e in await published(database) if e.type.endswith("delivered.v1")]
    assert [e.data["channel"] for e in delivered] == ["wechat"]  # the SMS awaits its receipt
    assert OPENID not in str([e.data for e in await published(database)])


async def test_not_subscribed_43101_falls_back_to_sms_and_the_receipt_completes_it(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(database, settings, openid=OPENID, phone=PHONE, consents=(template_id,))
    providers.wechat.openid_errors[OPENID] = 43101
    notification = await tell(database, await application_of(database, subject))
    assert notification
    clock = Clock()
    dispatcher = real_dispatcher(database, settings, providers, clock)
    await drain(dispatcher)
    await dispatcher.close()

    wechat = await one_message(database, notification, "wechat")
    assert (wechat.status, wechat.failure_code) == ("permanent-failure", "43101")
    sms = await one_message(database, notification, "sms")
    assert sms.fallback_of == wechat.id and sms.status == "sending" and sms.provider_ref
    [sent] = providers.sms.sent
    assert sent["out_id"] == sms.id and sent["template_code"]

    async with database.sessionmaker() as session, session.begin():
        assert await delivery.apply_receipt(
            session,
            out_id=sms.id,
            biz_id=sms.provider_ref,
            delivered=True,
            code="DELIVRD",
            settings=settings,
            now=clock(),
        )
    assert (await one_message(database, notification, "sms")).status == "delivered"
    # A repeated receipt finds the message decided and changes nothing.
    async with database.sessionmaker() as session, session.begin():
        await delivery.apply_receipt(
            session,
            out_id=sms.id,
            biz_id=sms.provider_ref,
            delivered=False,
            code="MK:0001",
            settings=settings,
            now=clock(),
        )
    assert (await one_message(database, notification, "sms")).status == "delivered"
    types = [(e.type.rsplit(".", 2)[-2], e.data["channel"]) for e in await published(database)]
    assert types == [("failed", "wechat"), ("delivered", "sms")]


async def test_a_field_wechat_refuses_is_a_permanent_failure_naming_it(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(database, settings, openid=OPENID, consents=(template_id,))
    providers.wechat.reject_field = "thing1"
    notification = await tell(database, await application_of(database, subject))
    assert notification
    dispatcher = real_dispatcher(database, settings, providers, Clock())
    await drain(dispatcher)
    await dispatcher.close()
    message = await one_message(database, notification, "wechat")
    assert message.status == "permanent-failure"
    assert (message.failure_code, message.failure_field) == ("47003", "thing1")
    assert "thing1" in (message.failure_detail or "")
    # WeChat did not use the subscription: it is the citizen's again.
    async with database.sessionmaker() as session:
        assert await repository.unconsumed_consents(session, subject) == {template_id: 1}
    [failed] = await published(database)
    assert failed.data["field"] == "thing1" and failed.data["code"] == "47003"


async def test_a_value_too_long_for_its_field_fails_before_any_call_unless_truncation_is_allowed(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    long_item = "港澳台居民居住证申领及补领换领和临时身份证明办理"  # 24 characters
    body = {
        "template_id": "tmpl-custom-issued",
        "page": "pages/wallet/index",
        "fields": [
            {"key": "thing1", "source": "{{ item.name }}"},
            {"key": "time2", "source": "{{ at | wechat_time }}"},
        ],
    }
    async with database.sessionmaker() as session, session.begin():
        await template_versions.save(
            session, kind=ISSUED, channel="wechat", body=body, by="admin", settings=settings
        )
    subject = await citizen(
        database, settings, openid=OPENID, fallback="inbox", consents=("tmpl-custom-issued",)
    )
    notification = await tell(
        database, await application_of(database, subject, item_name=long_item)
    )
    assert notification
    clock = Clock()
    dispatcher = real_dispatcher(database, settings, providers, clock)
    await drain(dispatcher)
    message = await one_message(database, notification, "wechat")
    assert (message.status, message.failure_code, message.failure_field) == (
        "permanent-failure",
        "render",
        "thing1",
    )
    assert providers.wechat.send_calls == 0

    body["fields"][0]["truncate"] = True  # type: ignore[index]
    async with database.sessionmaker() as session, session.begin():
        await template_versions.save(
            session, kind=ISSUED, channel="wechat", body=body, by="admin", settings=settings
        )
    again = await tell(database, await application_of(database, subject, item_name=long_item))
    assert again
    clock.advance(seconds=1)
    await drain(dispatcher)
    await dispatcher.close()
    assert (await one_message(database, again, "wechat")).status == "delivered"
    value = providers.wechat.sent[-1]["data"]["thing1"]["value"]
    assert len(value) <= 20 and value.endswith("…") and value.startswith("港澳台居民居住证")


async def test_retries_back_off_and_stop_at_the_bound(
    clean_notify: Database, infrastructure: Infrastructure, providers: Providers
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure, notify_max_attempts=3, notify_retry_backoff_s=60)
    await seed_templates(database, settings)
    template_id = await wechat_template_id(database, ISSUED)
    subject = await citizen(
        database, settings, openid=OPENID, fallback="inbox", consents=(template_id,)
    )
    providers.wechat.errcode = -1  # system busy, every time
    notification = await tell(database, await application_of(database, subject))
    assert notification
    clock = Clock()
    dispatcher = real_dispatcher(database, settings, providers, clock)
    attempts_seen = []
    for _ in range(6):
        await dispatcher.run_once()
        message = await one_message(database, notification, "wechat")
        attempts_seen.append((message.attempts, message.status))
        if message.next_attempt_at is not None:
            wait = message.next_attempt_at - clock()
            # Exponential: about 60 s, then about 120 s (with jitter).
            assert timedelta(seconds=40) < wait < timedelta(seconds=200)
        clock.advance(seconds=300)
    await dispatcher.close()
    assert providers.wechat.send_calls == 3
    assert attempts_seen[:3] == [
        (1, "temporary-failure"),
        (2, "temporary-failure"),
        (3, "temporary-failure"),
    ]
    final = await one_message(database, notification, "wechat")
    assert final.next_attempt_at is None and final.finished_at is not None
    [failed] = await published(database)
    assert failed.data["status"] == "temporary-failure" and failed.data["attempts"] == 3


async def test_no_retry_after_the_retry_window(
    clean_notify: Database, infrastructure: Infrastructure, providers: Providers
) -> None:
    database = clean_notify
    settings = notify_settings(
        infrastructure,
        notify_max_attempts=10,
        notify_retry_backoff_s=60,
        notify_retry_window_s=150,
    )
    await seed_templates(database, settings)
    subject = await citizen(database, settings, phone=PHONE)
    providers.sms.code = "isv.BUSINESS_LIMIT_CONTROL"
    notification = await tell(database, await application_of(database, subject))
    assert notification
    clock = Clock()
    dispatcher = real_dispatcher(database, settings, providers, clock)
    for _ in range(5):
        await dispatcher.run_once()
        clock.advance(seconds=200)
    await dispatcher.close()
    message = await one_message(database, notification, "sms")
    # 60 s after the first attempt the second is inside the window; the third would not be.
    assert message.attempts == 2 and message.next_attempt_at is None
    assert message.status == "temporary-failure"
    assert message.failure_code == "isv.BUSINESS_LIMIT_CONTROL"


async def test_the_same_event_twice_makes_one_notification_and_one_message(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    subject = await citizen(database, settings, phone=PHONE)
    application = await application_of(database, subject)
    first = await tell(database, application, event_id="0193f3c0-0000-7000-8000-000000000001")
    second = await tell(database, application, event_id="0193f3c0-0000-7000-8000-000000000001")
    assert first is not None and second is None
    dispatcher = real_dispatcher(database, settings, providers, Clock())
    await drain(dispatcher)
    await dispatcher.close()
    assert len(await notifications_of(database, subject)) == 1
    assert len(await messages_of(database, first)) == 1
    assert len(providers.sms.sent) == 1


async def test_a_number_gets_at_most_its_daily_share_of_sms(
    clean_notify: Database, infrastructure: Infrastructure, providers: Providers
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure, sms_daily_limit_per_number=2)
    await seed_templates(database, settings)
    subject = await citizen(database, settings, phone=PHONE)
    application = await application_of(database, subject)
    notifications = [await tell(database, application) for _ in range(3)]
    dispatcher = real_dispatcher(database, settings, providers, Clock())
    await drain(dispatcher)
    await dispatcher.close()
    statuses = [(await one_message(database, n, "sms")).failure_code for n in notifications if n]
    assert statuses.count("daily-limit") == 1
    assert len(providers.sms.sent) == 2
    # The inbox still has all three.
    assert len(await notifications_of(database, subject)) == 3


async def test_the_sweeper_resends_a_lost_sms_once_and_gives_up_on_a_lost_wechat_message(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, ISSUED)
    by_sms = await citizen(database, settings, phone=PHONE)
    by_wechat = await citizen(
        database, settings, openid=OPENID, fallback="inbox", consents=(template_id,)
    )
    sms_notification = await tell(database, await application_of(database, by_sms))
    wechat_notification = await tell(database, await application_of(database, by_wechat))
    assert sms_notification and wechat_notification
    clock = Clock()
    # A dispatcher claimed both and died before recording any answer.
    async with database.sessionmaker() as session, session.begin():
        await session.execute(
            update(Message).values(
                status="sending", sending_since=clock(), next_attempt_at=None, attempts=1
            )
        )
    clock.advance(seconds=settings.notify_send_stuck_s + 1)
    async with database.sessionmaker() as session, session.begin():
        swept = await delivery.sweep(session, settings=settings, now=clock())
    assert swept == 2
    dispatcher = real_dispatcher(database, settings, providers, clock)
    await drain(dispatcher)
    await dispatcher.close()
    sms = await one_message(database, sms_notification, "sms")
    assert sms.status == "sending" and sms.attempts == 2 and len(providers.sms.sent) == 1
    wechat = await one_message(database, wechat_notification, "wechat")
    assert (wechat.status, wechat.failure_code) == ("technical-failure", "lost")
    assert providers.wechat.send_calls == 0  # it may have arrived: never sent twice
    async with database.sessionmaker() as session:
        assert await repository.unconsumed_consents(session, by_wechat) == {}

    # An accepted SMS whose receipt never comes is settled after the receipt timeout.
    clock.advance(seconds=settings.notify_receipt_timeout_s + 1)
    async with database.sessionmaker() as session, session.begin():
        assert await delivery.sweep(session, settings=settings, now=clock()) == 1
    sms = await one_message(database, sms_notification, "sms")
    assert (sms.status, sms.failure_code) == ("technical-failure", "no-receipt")


async def test_without_any_channel_the_inbox_still_has_the_notification(
    platform: tuple[Database, Settings],
) -> None:
    database, settings = platform
    subject = await citizen(database, settings, fallback="inbox")
    notification = await tell(database, await application_of(database, subject))
    assert notification
    assert await messages_of(database, notification) == []
    [stored] = await notifications_of(database, subject)
    assert stored.read_at is None and "高龄老人津贴申领" in stored.body + stored.title
    assert await count_rows(database, Notification) == 1


async def test_a_template_version_that_cannot_be_read_fails_its_message_not_the_batch(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    broken_owner = await citizen(database, settings, phone=PHONE)
    fine_owner = await citizen(database, settings, phone="13987654321")
    broken = await tell(database, await application_of(database, broken_owner))
    fine = await tell(database, await application_of(database, fine_owner))
    assert broken and fine
    sms = await one_message(database, broken, "sms")
    async with database.sessionmaker() as session, session.begin():
        # A version written by some other release, with a body this one cannot read.
        session.add(
            Template(
                id="0193f3c0-0000-7000-8000-00000000beef",
                kind=ISSUED.value,
                channel="sms",
                version=99,
                body={"template_code": "SMS_X"},
                created_by="someone",
            )
        )
        await session.flush()
        await session.execute(
            update(Message)
            .where(Message.id == sms.id)
            .values(template_version_id="0193f3c0-0000-7000-8000-00000000beef")
        )
    dispatcher = real_dispatcher(database, settings, providers, Clock())
    await drain(dispatcher)
    await dispatcher.close()
    failed = await one_message(database, broken, "sms")
    assert (failed.status, failed.failure_code) == ("permanent-failure", "template")
    assert (await one_message(database, fine, "sms")).status == "sending"
    assert [m["phone_number"] for m in providers.sms.sent] == ["13987654321"]
