"""App factory of the catalog service."""

from fastapi import FastAPI

from catalog_service.events import outbox
from catalog_service.models import metadata
from wangban.app import ServiceSpec, create_service_app
from wangban.settings import Settings

SPEC = ServiceSpec(
    name="catalog",
    title="Wangban catalog service",
    description=(
        "The standardised catalogue of service items (实施清单) and bundles (一件事一次办)."
    ),
    package="catalog_service",
    metadata=metadata,
    outbox=outbox,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
