"""App factory of the sharing service."""

from fastapi import FastAPI

from sharing_service.events import outbox
from sharing_service.models import metadata
from wangban.app import ServiceSpec, create_service_app
from wangban.settings import Settings

SPEC = ServiceSpec(
    name="sharing",
    title="Wangban sharing service",
    description=(
        "Data-sharing lookups instead of certificates (免证明) and the "
        "e-certificate library (电子证照)."
    ),
    package="sharing_service",
    metadata=metadata,
    outbox=outbox,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
