"""The item versions approval decides under: our copies (from ``item.published``), kept in
memory per process, and the catalog asked for a version our copy lacks yet.

A published version never changes (a change is a new version under a new id), so a copy read
once stays right for the life of the process: each event no longer reads the version's row
(its content is the whole item as JSON, the widest row approval reads) before deciding. The
memory is bounded (least recently used out) and holds only what was read from committed rows,
never a version this process is about to save in a transaction that may still roll back (that
one is read again, committed, by the next event).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import catalog_copies, repository
from approval_service.models import ItemVersionCopy
from contracts.catalog.api_v1 import PublishedVersion
from wangban.db import Database
from wangban.http import ServiceCalls

log = logging.getLogger(__name__)

CACHED_VERSIONS = 512
"""Versions kept per process: every 秒批 item's current version many times over (a version's
content is a few kilobytes)."""


@dataclass(frozen=True)
class CatalogAnswer:
    """What the catalog said about a version approval had no copy of (``None``: it never
    published one)."""

    version: PublishedVersion | None

    def names(self, version_id: str) -> PublishedVersion | None:
        """The answer, when it is the version asked for."""
        found = self.version
        return found if found is not None and found.version_id == version_id else None


def version_values(
    *, version_id: str, item_id: str, implementing_code: str, content: dict[str, object]
) -> dict[str, object]:
    """A copy's row."""
    return {
        "version_id": version_id,
        "item_id": item_id,
        "implementing_code": implementing_code,
        "name": str(content.get("name", "")),
        "department": str(content.get("department", "")),
        "content": content,
    }


def _values_of(found: PublishedVersion) -> dict[str, object]:
    return version_values(
        version_id=found.version_id,
        item_id=found.item_id,
        implementing_code=found.implementing_code,
        content=found.content,
    )


def _detached(row: ItemVersionCopy) -> ItemVersionCopy:
    """A copy of the row belonging to no session: nothing expires or reloads it when the
    session that read it ends, and no session flushes it."""
    return ItemVersionCopy(
        version_id=row.version_id,
        item_id=row.item_id,
        implementing_code=row.implementing_code,
        name=row.name,
        department=row.department,
        content=row.content,
    )


class ItemVersions:
    """Copies of published versions by id, read once per process (bounded), and the catalog's
    answer for one our copy lacks."""

    def __init__(self, catalog: ServiceCalls, *, size: int = CACHED_VERSIONS) -> None:
        self._catalog = catalog
        self._size = size
        self._kept: OrderedDict[str, ItemVersionCopy] = OrderedDict()

    def _remember(self, copy: ItemVersionCopy) -> ItemVersionCopy:
        self._kept[copy.version_id] = copy
        self._kept.move_to_end(copy.version_id)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return copy

    def _recalled(self, version_id: str) -> ItemVersionCopy | None:
        copy = self._kept.get(version_id)
        if copy is not None:
            self._kept.move_to_end(version_id)
        return copy

    async def before_transaction(
        self, database: Database, version_id: str
    ) -> tuple[ItemVersionCopy | None, CatalogAnswer | None]:
        """For a prepare step: our copy (remembered, else read committed and remembered), else
        the catalog's answer with an unsaved copy made from it (``None`` when the catalog never
        published the version). Raises ``CatalogUnavailable`` while the catalog cannot answer."""
        copy = self._recalled(version_id)
        if copy is not None:
            return copy, None
        async with database.read_sessionmaker() as reads:
            row = await repository.item_version(reads, version_id)
            if row is not None:
                return self._remember(_detached(row)), None
        asked = CatalogAnswer(await catalog_copies.published_version(self._catalog, version_id))
        found = asked.names(version_id)
        return (None if found is None else ItemVersionCopy(**_values_of(found))), asked

    async def in_transaction(
        self, session: AsyncSession, version_id: str, *, asked: CatalogAnswer | None
    ) -> ItemVersionCopy | None:
        """For a handler: our copy; when its event has not come yet, the one the prepare step
        had from the catalog (``asked``), saved as if the event had come first. ``None`` for a
        version the catalog never published. Never asks the catalog: without ``asked`` for a
        version we lack, raises :class:`MissingVersion`."""
        copy = self._recalled(version_id)
        if copy is not None:
            return copy
        row = await repository.item_version(session, version_id)
        if row is not None:
            return row
        if asked is None:
            raise MissingVersion(version_id)
        found = asked.names(version_id)
        if found is None:
            # Intake learns versions from the catalog, so it cannot have sent this; if it did,
            # the case is not held for ever: it goes to a person, and the log says why.
            log.error(
                "application for an item version the catalog never published; a person decides",
                extra={"fields": {"item_version_id": version_id}},
            )
            return None
        await repository.save_item_version(session, _values_of(found))
        return await repository.item_version(session, version_id)


class MissingVersion(Exception):
    """The handler lacks a version its prepare step did not ask the catalog for."""

    def __init__(self, version_id: str) -> None:
        super().__init__(version_id)
        self.version_id = version_id
