"""App factory of the sharing service."""

from fastapi import FastAPI

from sharing_service import api, audit
from sharing_service.audit_stream import AuditStream
from sharing_service.configuration import ConfigurationCache
from sharing_service.consumers import build_consumer
from sharing_service.events import outbox
from sharing_service.models import metadata
from sharing_service.registry import seed_registry
from wangban.app import ServiceSpec, create_service_app
from wangban.settings import Settings


def _configure_audit(app: FastAPI, settings: Settings) -> None:
    # The chain key comes from this app's settings, not from the database.
    audit.configure(settings)


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
    extensions=(_configure_audit,),
    workers=(
        # Looks every minute; signs when WANGBAN_AUDIT_CHECKPOINT_INTERVAL_S has passed.
        audit.CheckpointWorker,
        # The registry kept per process, dropped when it changes anywhere.
        ConfigurationCache,
        # lookup.audited: the audit log published by tailing it (one replica at a time).
        AuditStream,
    ),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
