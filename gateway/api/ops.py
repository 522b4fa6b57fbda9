"""Operations and statistics for staff: the services' dead letters (role ``ops``) and the
catalogue's and intake's statistics, passed through."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway.api import API
from gateway.api.deps import STAFF, Services, Staff, problems
from gateway.upstream import FORWARDED_PROBLEMS, segment
from wangban.errors import NotFound

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
