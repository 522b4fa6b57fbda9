"""Sharing's copy of an item version it has not read yet.

Sharing keeps copies of published versions from ``item.published`` (what material resolution
needs). Intake asks sharing to resolve the materials of the version the catalogue calls
current, and sharing's copy may lag it for a moment (just published; sharing just started):
answering 404 would refuse the citizen (503) for our own delay. So sharing asks the catalog for
that version (``GET /item-versions/{id}``) and keeps it, exactly as the event would have.
"""

from __future__ import annotations

import httpx

from contracts.catalog.api_v1 import PublishedVersion, item_version_path
from sharing_service import configuration, repository
from sharing_service.models import ItemVersionCopy
from wangban.db import Database
from wangban.errors import ServiceUnavailable
from wangban.http import ServiceCalls
from wangban.settings import Settings


class CatalogUnavailable(ServiceUnavailable):
    type_slug = "catalog-unavailable"
    title = "事项目录服务暂时不可用"

    def __init__(self) -> None:
        super().__init__("暂时无法读取办事事项，请稍后重试")


def catalog_calls(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> ServiceCalls:
    """Sharing's calls to the catalog: a published version is nobody's data, so no person goes
    along; :class:`CatalogUnavailable` (503) when the catalog cannot answer."""
    return ServiceCalls(
        settings,
        "catalog",
        caller="sharing",
        unavailable=CatalogUnavailable,
        send_actor=False,
        transport=transport,
    )


async def published_version(catalog: ServiceCalls, version_id: str) -> PublishedVersion | None:
    """The catalog's published version ``version_id``; ``None`` when it has none."""
    path = item_version_path(version_id)
    body = None if path is None else await catalog.fetch(path)
    return None if body is None else PublishedVersion.from_answer(body)


def as_copy(version: PublishedVersion) -> ItemVersionCopy:
    content = version.content
    return ItemVersionCopy(
        version_id=version.version_id,
        item_id=version.item_id,
        implementing_code=version.implementing_code,
        name=str(content.get("name", "")),
        materials=list(content.get("materials", [])),
        published_at=version.published_at,
    )


async def ensure_version(database: Database, *, catalog: ServiceCalls, version_id: str) -> None:
    """Make sure sharing has a copy of ``version_id``: asked of the catalog when missing and
    written in its own short transaction (idempotent, like the event's), before the request's
    transaction opens, so no connection waits idle on the catalog. Nothing is kept when the
    catalog has no such published version (the resolution then answers 404); raises
    ``CatalogUnavailable`` (503) when the catalog cannot answer."""
    async with database.read_sessionmaker() as session:
        if await configuration.item_version(session, version_id) is not None:
            return
    found = await published_version(catalog, version_id)
    if found is None:
        return
    async with database.sessionmaker() as session, session.begin():
        await repository.save_item_version(session, as_copy(found))
