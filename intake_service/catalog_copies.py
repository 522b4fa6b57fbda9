"""Intake's copy of an item version it has not read yet.

Intake keeps copies of published versions from ``item.published`` (the hot path: no call per
application). The gateway, though, names the version the catalogue calls current, and intake's
copy may lag it for a moment (just published; intake just started). Answering the citizen 404
for an item the catalogue shows would be our fault, so intake asks the catalog for that version
(``GET /item-versions/{id}``) and keeps it, exactly as the event would have.
"""

from __future__ import annotations

from intake_service import repository
from intake_service.models import ItemVersionCopy
from wangban.catalog_client import CatalogClient, PublishedVersion
from wangban.db import Database


def copy_values(version: PublishedVersion) -> dict[str, object]:
    content = version.content
    return {
        "version_id": version.version_id,
        "item_id": version.item_id,
        "implementing_code": version.implementing_code,
        "name": str(content.get("name", "")),
        "department": str(content.get("department", "")),
        "region_code": str(content.get("region_code", "")),
        "scope": str(content.get("scope", "district")),
        "content": content,
        "published_at": version.published_at,
        "withdrawn_at": version.withdrawn_at,
    }


async def learn_version(
    database: Database, *, catalog: CatalogClient, version_id: str
) -> ItemVersionCopy | None:
    """The version as the catalog publishes it, kept as intake's copy; ``None`` when the
    catalog has no such published version. Raises ``CatalogUnavailable`` (503) when the catalog
    cannot answer. The copy is written in its own short transaction (idempotent, like the
    event's), before any transaction of the request opens."""
    found = await catalog.published_version(version_id)
    if found is None:
        return None
    async with database.sessionmaker() as session, session.begin():
        await repository.save_item_version(session, copy_values(found))
    async with database.read_sessionmaker() as session:
        return await repository.item_version(session, version_id)
