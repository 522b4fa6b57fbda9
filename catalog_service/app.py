"""App factory of the catalog service."""

from fastapi import FastAPI

from catalog_service import api, jobs, search, service, unmatched
from catalog_service.events import outbox
from catalog_service.models import metadata
from catalog_service.seed import seed_catalogue
from wangban.app import PeriodicJob, ServiceSpec, create_service_app
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
    routers=(api.public, api.admin),
    seeds=(seed_catalogue,),
    # The citizen lexicon (catalog_service/lexicon): production data, loaded by `wangban migrate`.
    reference_data=(service.load_shipped_lexicon,),
    shutdowns=(api.close_clients, api.flush_unmatched),
    warm_ups=(search.warm_up,),
    # Long admin operations (imports) run here, not in the request (catalog_service.jobs).
    workers=(jobs.BackgroundJobs,),
    # Searches that found nothing are counted in memory and written here, never by the search.
    periodic=(
        PeriodicJob(
            name="unmatched-searches",
            interval_s=unmatched.FLUSH_INTERVAL_S,
            run=unmatched.flush_recorded,
        ),
        PeriodicJob(name="unmatched-retention", interval_s=3600, run=unmatched.forget_old),
    ),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
