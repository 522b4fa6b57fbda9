"""App factory of the approval service."""

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import api, cases
from approval_service.calendar import calendar_for
from approval_service.consumers import build_consumer
from approval_service.events import outbox
from approval_service.models import metadata
from wangban.app import PeriodicJob, ServiceSpec, create_service_app
from wangban.settings import Settings


async def watch_deadlines(session: AsyncSession, settings: Settings) -> None:
    await cases.watch_deadlines(session, calendar=await calendar_for(session, settings))


SPEC = ServiceSpec(
    name="approval",
    title="Wangban approval service",
    description="秒批 (automatic approval by rules over shared data) and the manual workflow.",
    package="approval_service",
    metadata=metadata,
    outbox=outbox,
    routers=(api.router, api.rule_router),
    consumers=(build_consumer,),
    periodic=(PeriodicJob(name="deadlines", interval_s=60, run=watch_deadlines),),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
