"""App factory of the gateway service."""

from fastapi import FastAPI

from gateway.events import outbox
from gateway.models import metadata
from wangban.app import ServiceSpec, create_service_app
from wangban.settings import Settings

SPEC = ServiceSpec(
    name="gateway",
    title="Wangban gateway",
    description=(
        "The mini-program and staff-console API: the platform's only public door (粤省事-style)."
    ),
    package="gateway",
    metadata=metadata,
    outbox=outbox,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
