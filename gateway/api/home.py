"""The mini-program's first screen (``/home``), put together by :mod:`gateway.home`."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway.api import API
from gateway.api.deps import CITIZENS, Citizen, Services, problems
from gateway.home import first_screen
from gateway.schemas import HomeOut

router = APIRouter(prefix=API, tags=["citizen"])


@router.get(
    "/home",
    summary="The first screen: hot items, my open applications, …",
    response_model=HomeOut,
    responses=problems(CITIZENS),
)
async def home(identity: Citizen, services: Services) -> Response:
    return await first_screen(services)
