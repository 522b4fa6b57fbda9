"""Two things that only show with the real pieces together: the WeChat access token shared by
every worker through PostgreSQL, and test mode running the whole delivery path without sending
anything."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from notify_service.app import build_channels, build_dispatcher
from notify_service.models import wechat_access_token
from notify_service.simulated import SimulatedSms, SimulatedWeChat
from notify_service.templates import NotificationKind
from notify_service.wechat import WeChatClient
from tests.infrastructure import Infrastructure
from tests.notify.support import (
    APP_SECRET,
    APPID,
    Providers,
    application_of,
    citizen,
    clean_notify,
    drain,
    notify_settings,
    one_message,
    providers,
    published,
    seed_templates,
    tell,
    wechat_template_id,
)
from wangban.crypto import FieldCipher
from wangban.db import Database
from wangban.wechat import PostgresTokenStore

__all__ = ["clean_notify", "providers"]  # fixtures

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"


async def test_workers_share_one_access_token_and_replace_it_together(
    clean_notify: Database, infrastructure: Infrastructure, providers: Providers
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure)
    cipher = FieldCipher.from_settings(settings)
    # Two workers: separate clients, separate stores, one table.
    workers = [
        WeChatClient(
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
        )
        for _ in range(2)
    ]

    async def send(worker: WeChatClient, n: int) -> str:
        result = await worker.send_subscription(
            openid=OPENID,
            template_id="tmpl-certificate-issued",
            page=None,
            data={"thing1": f"第{n}条"},
            miniprogram_state="formal",
            lang="zh_CN",
        )
        return result.outcome

    outcomes = await asyncio.gather(*(send(workers[n % 2], n) for n in range(10)))
    assert outcomes == ["delivered"] * 10
    assert providers.wechat.token_calls == [False]  # one fetch for both workers
    async with database.sessionmaker() as session:
        row = (
            await session.execute(
                select(wechat_access_token).where(wechat_access_token.c.appid == APPID)
            )
        ).first()
    token = providers.wechat.current_token
    assert row is not None and token is not None and token not in row.token_enc  # encrypted

    # WeChat ends the token early (42001): one more fetch, then both use the new one; nobody
    # forces (normal mode already gives a new token for an expired one).
    providers.wechat.expired.add(providers.wechat.current_token or "")
    outcomes = await asyncio.gather(*(send(workers[n % 2], n) for n in range(4)))
    assert outcomes == ["delivered"] * 4
    assert providers.wechat.token_calls == [False, False]
    assert len(set(providers.wechat.tokens_used[-2:])) == 1
    for worker in workers:
        await worker.close()


async def test_test_mode_runs_the_whole_path_and_sends_nothing(
    clean_notify: Database, infrastructure: Infrastructure
) -> None:
    database = clean_notify
    settings = notify_settings(infrastructure, notify_test_mode=True)
    await seed_templates(database, settings)
    channels = build_channels(database, settings)
    assert isinstance(channels.wechat, SimulatedWeChat) and isinstance(channels.sms, SimulatedSms)
    template_id = await wechat_template_id(database, NotificationKind.CERTIFICATE_ISSUED)
    by_wechat = await citizen(database, settings, openid=OPENID, consents=(template_id,))
    by_sms = await citizen(database, settings, phone="13912345678")
    first = await tell(database, await application_of(database, by_wechat))
    second = await tell(database, await application_of(database, by_sms))
    assert first and second
    await asyncio.sleep(0.01)  # the dispatcher's clock is the real one: let "now" pass creation
    dispatcher = build_dispatcher(database, settings)
    await drain(dispatcher)
    await dispatcher.close()
    assert (await one_message(database, first, "wechat")).status == "delivered"
    # The simulated gateway accepts the SMS and a simulated receipt delivers it.
    assert (await one_message(database, second, "sms")).status == "delivered"
    events = await published(database)
    assert [e.data["test_mode"] for e in events] == [True, True]
