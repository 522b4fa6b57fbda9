"""App factory of the notify service."""

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from notify_service import api, delivery, template_versions
from notify_service.channels import SmsChannel
from notify_service.consumers import build_consumer
from notify_service.delivery import Channels, Dispatcher, DispatchWorker
from notify_service.events import outbox
from notify_service.models import metadata, wechat_access_token
from notify_service.simulated import SimulatedSms, SimulatedWeChat
from notify_service.sms import SmsGatewayClient
from notify_service.wechat import WeChatClient
from wangban.app import PeriodicJob, ServiceSpec, create_service_app
from wangban.crypto import FieldCipher
from wangban.db import Database
from wangban.settings import Settings, get_settings
from wangban.wechat import PostgresTokenStore

TOKEN_CONTEXT = "notify.wechat_token"


def build_sms(settings: Settings) -> SmsChannel:
    """The SMS gateway, or in test mode the simulated one."""
    if settings.notify_test_mode:
        return SimulatedSms()
    return SmsGatewayClient(
        base_url=settings.sms_gateway_url,
        access_key_id=settings.sms_access_key_id,
        access_key_secret=settings.sms_access_key_secret.get_secret_value(),
        sign_name=settings.sms_sign_name,
        timeout_s=settings.notify_http_timeout_s,
    )


def build_channels(database: Database, settings: Settings) -> Channels:
    """The real channels, or in test mode the simulated ones (nothing leaves the machine)."""
    if settings.notify_test_mode:
        return Channels(wechat=SimulatedWeChat(), sms=SimulatedSms(), test_mode=True)
    return Channels(
        wechat=WeChatClient(
            base_url=settings.wechat_api_base,
            appid=settings.wechat_appid,
            secret=settings.wechat_app_secret.get_secret_value(),
            token_store=PostgresTokenStore(
                database,
                table=wechat_access_token,
                appid=settings.wechat_appid,
                cipher=FieldCipher.from_settings(settings),
                context=TOKEN_CONTEXT,
            ),
            timeout_s=settings.notify_http_timeout_s,
        ),
        sms=build_sms(settings),
    )


def build_dispatcher(database: Database, settings: Settings) -> Dispatcher:
    return Dispatcher(
        database=database,
        settings=settings,
        channels=build_channels(database, settings),
        cipher=FieldCipher.from_settings(settings),
    )


def build_dispatch_worker(database: Database, settings: Settings) -> DispatchWorker:
    """The dispatcher as the running service's background worker: messages created in this
    process are handed to it when their transaction commits."""
    return DispatchWorker(build_dispatcher(database, settings))


def configure(app: FastAPI, settings: Settings) -> None:
    """The SMS channel the phone-verification route sends its codes through (the
    dispatcher has its own: a code is sent while the citizen waits, not queued)."""
    app.state.code_sms = build_sms(settings)
    app.state.test_mode = settings.notify_test_mode


async def close_code_sms(app: FastAPI) -> None:
    await app.state.code_sms.close()


async def sweep_stuck(session: AsyncSession, settings: Settings) -> None:
    now = delivery.now_utc()
    await delivery.sweep(session, settings=settings, now=now)
    await delivery.drop_stale_early_events(session, now=now)


async def seed_templates(session: AsyncSession) -> None:
    await template_versions.seed_defaults(session, get_settings())


SPEC = ServiceSpec(
    name="notify",
    title="Wangban notify service",
    description="WeChat subscription messages, SMS and the in-app inbox.",
    package="notify_service",
    metadata=metadata,
    outbox=outbox,
    routers=(api.inbox_router, api.admin_router, api.internal_router, api.callback_router),
    consumers=(build_consumer,),
    seeds=(seed_templates,),
    periodic=(PeriodicJob(name="sweeper", interval_s=60, run=sweep_stuck),),
    workers=(build_dispatch_worker,),
    extensions=(configure,),
    shutdowns=(close_code_sms,),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
