"""Two dispatchers against slow WeChat and SMS servers: every message is sent exactly once, and
no backend idles in a transaction while the channels answer (claims and answers each commit in
a short transaction of their own; the shared access token is fetched under a lock that is no
transaction's)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from notify_service.delivery import Dispatcher
from notify_service.templates import NotificationKind
from tests.infrastructure import Infrastructure
from tests.notify.support import (
    Clock,
    Providers,
    application_of,
    citizen,
    clean_notify,
    messages_of,
    notify_settings,
    providers,
    real_dispatcher,
    seed_templates,
    tell,
    wechat_template_id,
)
from tests.transactions import watching_idle_in_transaction
from wangban.db import Database
from wangban.settings import Settings

__all__ = ["clean_notify", "providers"]  # fixtures

DELAY_S = 0.4
CITIZENS = 4  # each way: by WeChat, by SMS


@pytest.fixture
async def platform(
    clean_notify: Database, infrastructure: Infrastructure
) -> tuple[Database, Settings]:
    # Small batches, so the two dispatchers share the work instead of one taking it all.
    settings = notify_settings(infrastructure, notify_dispatch_batch=2)
    await seed_templates(clean_notify, settings)
    return clean_notify, settings


async def _drain(dispatcher: Dispatcher) -> int:
    claimed = 0
    for _ in range(10):
        batch = await dispatcher.run_once()
        if not batch:
            break
        claimed += batch
    return claimed


async def test_two_dispatchers_send_each_message_once_and_hold_no_transaction_meanwhile(
    platform: tuple[Database, Settings], providers: Providers
) -> None:
    database, settings = platform
    template_id = await wechat_template_id(database, NotificationKind.CERTIFICATE_ISSUED)
    notifications: list[str] = []
    openids: list[str] = []
    phones: list[str] = []
    for i in range(CITIZENS):
        openid, phone = f"o-slow-{i:02d}-abcdefghijklmnop", f"139000000{i:02d}"
        by_wechat = await citizen(database, settings, openid=openid, consents=(template_id,))
        by_sms = await citizen(database, settings, phone=phone)
        for subject in (by_wechat, by_sms):
            notification = await tell(database, await application_of(database, subject))
            assert notification is not None
            notifications.append(notification)
        openids.append(openid)
        phones.append(phone)
    providers.wechat.delay_s = DELAY_S
    providers.sms.delay_s = DELAY_S

    first = real_dispatcher(database, settings, providers, Clock())
    second = real_dispatcher(database, settings, providers, Clock())
    try:
        async with watching_idle_in_transaction(database, longer_than_s=DELAY_S / 2) as samples:
            claimed = await asyncio.gather(_drain(first), _drain(second))
    finally:
        await first.close()
        await second.close()

    # Both took a share, and together every message once.
    assert all(claimed), claimed
    assert sum(claimed) == 2 * CITIZENS
    assert Counter(s["touser"] for s in providers.wechat.sent) == Counter(openids)
    assert Counter(s["phone_number"] for s in providers.sms.sent) == Counter(phones)
    assert providers.wechat.send_calls == CITIZENS
    # One access token for both dispatchers: the second waited for the first one's fetch.
    assert len(providers.wechat.token_calls) == 1
    for notification in notifications:
        [message] = await messages_of(database, notification)
        # WeChat answered delivered; the SMS gateway accepted (delivered on its receipt).
        assert message.status == ("delivered" if message.channel == "wechat" else "sending")
        assert message.attempts == 1

    # The watcher looked throughout (the channels took DELAY_S at least twice over), and never
    # saw a transaction waiting for them.
    assert len(samples) >= 2 * DELAY_S / 0.05 * 0.5
    assert max(samples) == 0
