"""App factory of the sharing service."""

from fastapi import FastAPI

from sharing_service import api
from sharing_service.consumers import build_consumer
from sharing_service.events import outbox
from sharing_service.models import metadata
from sharing_service.registry import seed_registry
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
    routers=(api.public, api.citizen, api.staff),
    consumers=(build_consumer,),
    seeds=(seed_registry,),
    shutdowns=(api.close_directory,),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
