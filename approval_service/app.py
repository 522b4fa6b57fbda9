"""App factory of the approval service."""

from fastapi import FastAPI

from approval_service.events import outbox
from approval_service.models import metadata
from wangban.app import ServiceSpec, create_service_app
from wangban.settings import Settings

SPEC = ServiceSpec(
    name="approval",
    title="Wangban approval service",
    description=("秒批 automatic approval and the manual workflow on working-day deadlines."),
    package="approval_service",
    metadata=metadata,
    outbox=outbox,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
