"""App factory of the intake service."""

from fastapi import FastAPI

from intake_service.events import outbox
from intake_service.models import metadata
from wangban.app import ServiceSpec, create_service_app
from wangban.settings import Settings

SPEC = ServiceSpec(
    name="intake",
    title="Wangban intake service",
    description=(
        "Applications from draft to result: 容缺受理, bundles, window intake (全城通办), 好差评."
    ),
    package="intake_service",
    metadata=metadata,
    outbox=outbox,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
