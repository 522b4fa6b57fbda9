"""The public catalogue (no login): finding items, an item's guide, bundles (一件事)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from gateway import applying
from gateway.api import API
from gateway.api.deps import Services, problems
from gateway.schemas import PRINTABLE
from gateway.upstream import FORWARDED_PROBLEMS, UpstreamUnavailable, segment
from wangban.errors import NotFound

router = APIRouter(prefix=API, tags=["public"])


@router.get("/items", summary="Find service items", responses=problems(FORWARDED_PROBLEMS))
async def find_items(
    services: Services,
    q: Annotated[str | None, Query(max_length=50, pattern=PRINTABLE)] = None,
    department: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    type: Annotated[str | None, Query(max_length=20, pattern=PRINTABLE)] = None,
    theme: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    list: Annotated[str | None, Query(max_length=4, pattern=PRINTABLE)] = None,
    miaopi: bool | None = None,
    page: Annotated[int, Query(ge=1, le=500)] = 1,
) -> Response:
    # The same for everyone: kept a few seconds (popular queries repeat many times a second).
    return await services.forward_public(
        "catalog",
        "/items",
        params={
            "q": q,
            "department": department,
            "item_type": type,
            "theme": theme,
            "list": list,
            "auto_approval": miaopi,
            "page": page,
        },
    )


@router.get(
    "/facets",
    summary="What the search screen filters by: departments and themes (主题), with counts",
    responses=problems(FORWARDED_PROBLEMS),
)
async def search_facets(services: Services) -> Response:
    # The same for everyone, and it changes only when an item is published or withdrawn.
    return await services.forward_public("catalog", "/facets")


@router.get(
    "/items/{code}",
    summary="The full guide (办事指南) of an item",
    responses=problems(FORWARDED_PROBLEMS),
)
async def get_item(code: str, services: Services) -> Response:
    return await services.forward("catalog", "GET", f"/items/{segment(code)}")


@router.get("/bundles", summary="Bundles (一件事一次办)", responses=problems(FORWARDED_PROBLEMS))
async def list_bundles(services: Services) -> Response:
    return await services.forward_public("catalog", "/bundles")


@router.get(
    "/bundles/{bundle_id}",
    summary="One bundle, its current version",
    responses=problems(NotFound, UpstreamUnavailable),
)
async def get_bundle(bundle_id: str, services: Services) -> Any:
    return await applying.current_bundle(services, bundle_id)
