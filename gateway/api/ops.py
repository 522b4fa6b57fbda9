"""Operations and statistics for staff: the services' health and their dead letters (role
``ops``), and the catalogue's and intake's statistics, passed through."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from gateway.api import API
from gateway.api.deps import STAFF, Services, Staff, problems
from gateway.api.passthrough import staff_may
from gateway.upstream import FORWARDED_PROBLEMS, Upstreams, UpstreamUnavailable, segment
from wangban.app import ServiceStatus, service_status
from wangban.errors import Forbidden, NotFound

log = logging.getLogger(__name__)

router = APIRouter(prefix=f"{API}/staff", tags=["staff"])
stats_router = APIRouter(prefix=f"{API}/stats", tags=["statistics"])

OPS_SERVICES = ("catalog", "intake", "approval", "sharing", "notify")
"""The services that consume events, hence may have dead letters (the gateway consumes none)."""


class UnknownService(NotFound):
    type_slug = "unknown-service"
    title = "没有这个服务"


def _ops_target(service: str) -> str:
    if service not in OPS_SERVICES:
        raise UnknownService(f"没有“{service}”这个服务", extra={"services": list(OPS_SERVICES)})
    return service


OPS_STATUS_TIMEOUT_S = 2.0
"""How long the health table waits for one service: one that has not answered by then is shown
as unreachable, and the others are shown all the same."""

Unreachable = Literal["timeout", "unavailable", "refused"]


class ServiceHealth(BaseModel):
    service: str
    state: Literal["up", "degraded", "unreachable"]
    """``up``: its database migrated, the broker answering (where it uses one) and every
    consumer caught up; ``degraded``: it answers but one of those is not so."""
    status: ServiceStatus | None = None
    """Its own answer; ``None`` when unreachable."""
    unreachable: Unreachable | None = None
    """Why there is no answer: none in time, no connection (or a 5xx), or another refusal."""


class OpsStatus(BaseModel):
    services: list[ServiceHealth]
    """The gateway first, then every service with events, in :data:`OPS_SERVICES` order."""


def _health(status: ServiceStatus) -> ServiceHealth:
    up = (
        status.database.state == "migrated"
        and (status.broker is None or status.broker.state == "ok")
        and all(consumer.caught_up for consumer in status.consumers)
    )
    return ServiceHealth(service=status.service, state="up" if up else "degraded", status=status)


async def _asked(services: Upstreams, service: str) -> ServiceHealth:
    reason: Unreachable
    try:
        async with asyncio.timeout(OPS_STATUS_TIMEOUT_S):
            answer = await services.json(service, "GET", "/ops/status")
        return _health(ServiceStatus.model_validate(answer))
    except TimeoutError:
        reason = "timeout"
    except UpstreamUnavailable:
        reason = "unavailable"
    except Exception as exc:  # a problem answer, or not a status at all
        log.warning("ops status of %s refused: %s", service, type(exc).__name__)
        reason = "unavailable" if getattr(exc, "status", 0) >= 500 else "refused"
    return ServiceHealth(service=service, state="unreachable", unreachable=reason)


@router.get(
    "/ops/status",
    summary="Every service's health: database, broker, consumers' lag, outbox backlog and dead "
    "letters (ops)",
    responses=problems(STAFF, Forbidden),
)
async def ops_status(staff: Staff, services: Services, request: Request) -> OpsStatus:
    # Checked here too: without the role every service would refuse, and the table would show
    # them all unreachable rather than say the caller may not look.
    if not staff_may(staff, "GET", f"{API}/staff/ops/status"):
        raise Forbidden("无权执行此操作")
    own, others = await asyncio.gather(
        service_status(request.app),
        asyncio.gather(*(_asked(services, name) for name in OPS_SERVICES)),
    )
    return OpsStatus(services=[_health(own), *others])


@router.get(
    "/ops/dead-letters/{service}",
    summary="Dead letters of one service (ops)",
    responses=problems(STAFF, FORWARDED_PROBLEMS, UnknownService),
)
async def dead_letters(
    service: str, staff: Staff, services: Services, request: Request
) -> Response:
    return await services.forward(
        _ops_target(service), "GET", "/ops/dead-letters", params=dict(request.query_params)
    )


@router.post(
    "/ops/dead-letters/{service}/{dead_letter_id}/replay",
    summary="Replay one dead letter (ops)",
    responses=problems(STAFF, FORWARDED_PROBLEMS, UnknownService),
)
async def replay_dead_letter(
    service: str, dead_letter_id: str, staff: Staff, services: Services
) -> Response:
    return await services.forward(
        _ops_target(service), "POST", f"/ops/dead-letters/{segment(dead_letter_id)}/replay"
    )


@stats_router.get(
    "/catalog",
    summary="The catalogue's statistics (四办 lists, 秒批 share)",
    responses=problems(STAFF, FORWARDED_PROBLEMS),
)
async def catalog_statistics(staff: Staff, services: Services) -> Response:
    return await services.forward("catalog", "GET", "/statistics")


@stats_router.get(
    "/intake",
    summary="Applications: volumes, on-time rate, ratings",
    responses=problems(STAFF, FORWARDED_PROBLEMS),
)
async def intake_statistics(staff: Staff, services: Services, request: Request) -> Response:
    return await services.forward(
        "intake", "GET", "/staff/statistics", params=dict(request.query_params)
    )


# Per department and month, each figure with its numerator and denominator (the console's 统计),
# and the same as CSV tables: the catalogue's figures and the applications', each from the service
# that owns the data; the service scopes a department's staff to their own.


async def _monthly(services: Services, request: Request, service: str, path: str) -> Response:
    return await services.forward(service, "GET", path, params=dict(request.query_params))


@stats_router.get(
    "/intake/monthly",
    summary="Applications' figures per department and month (numerators and denominators)",
    responses=problems(STAFF, FORWARDED_PROBLEMS),
)
async def intake_monthly_statistics(staff: Staff, services: Services, request: Request) -> Response:
    return await _monthly(services, request, "intake", "/staff/statistics/monthly")


@stats_router.get(
    "/intake/monthly.csv",
    summary="Applications' figures per department and month as a CSV table",
    responses=problems(STAFF, FORWARDED_PROBLEMS),
)
async def intake_monthly_table(staff: Staff, services: Services, request: Request) -> Response:
    return await _monthly(services, request, "intake", "/staff/statistics/monthly.csv")


@stats_router.get(
    "/catalog/monthly",
    summary="The catalogue's figures per department at each month's end",
    responses=problems(STAFF, FORWARDED_PROBLEMS),
)
async def catalog_monthly_statistics(
    staff: Staff, services: Services, request: Request
) -> Response:
    return await _monthly(services, request, "catalog", "/statistics/monthly")


@stats_router.get(
    "/catalog/monthly.csv",
    summary="The catalogue's figures per department and month as a CSV table",
    responses=problems(STAFF, FORWARDED_PROBLEMS),
)
async def catalog_monthly_table(staff: Staff, services: Services, request: Request) -> Response:
    return await _monthly(services, request, "catalog", "/statistics/monthly.csv")
