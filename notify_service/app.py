"""App factory of the notify service."""

from fastapi import FastAPI

from notify_service.events import outbox
from notify_service.models import metadata
from wangban.app import ServiceSpec, create_service_app
from wangban.settings import Settings

SPEC = ServiceSpec(
    name="notify",
    title="Wangban notify service",
    description="WeChat subscription messages, SMS and the in-app inbox.",
    package="notify_service",
    metadata=metadata,
    outbox=outbox,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
