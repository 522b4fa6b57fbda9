"""App factory of the intake service."""

from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import api
from intake_service.api import deps
from intake_service.applications import supplements
from intake_service.consumers import consumer
from intake_service.events import outbox
from intake_service.models import metadata
from wangban.app import PeriodicJob, ServiceSpec, create_service_app
from wangban.calendar import WorkingDayCalendar
from wangban.settings import Settings


async def sweep_tolerated(session: AsyncSession, settings: Settings) -> None:
    """容缺 deadlines: remind applicants shortly before, end applications after."""
    today = datetime.now(UTC).date()
    calendar = WorkingDayCalendar.from_settings(settings)
    await supplements.remind_due(session, today=today, calendar=calendar)
    await supplements.terminate_overdue(session, today=today)


SPEC = ServiceSpec(
    name="intake",
    title="Wangban intake service",
    description=(
        "Applications from draft to result: 容缺受理, bundles, window intake (全城通办), 好差评."
    ),
    package="intake_service",
    metadata=metadata,
    outbox=outbox,
    routers=api.ROUTERS,
    consumers=(consumer,),
    shutdowns=(deps.close_runtime,),
    periodic=(PeriodicJob(name="tolerated-deadlines", interval_s=300, run=sweep_tolerated),),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
