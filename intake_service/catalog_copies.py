"""Intake's copy of an item or bundle version it has not read yet.

Intake keeps copies of published versions from ``item.published`` and ``bundle.published`` (the
hot path: no call per application). The gateway, though, names the version the catalogue calls
current, and intake's copy may lag it for a moment (just published; intake just started).
Answering 404 for an item or a bundle the catalogue shows would be our fault, so intake asks the
catalog for that version (``GET /item-versions/{id}``, ``GET /bundle-versions/{id}``) and keeps
it, exactly as the event would have.

Every entry point naming a version from the request (an application, at the window too, a
bundle, prefill) reads it with :func:`known_version`, :func:`current_version` or
:func:`known_bundle`, before any transaction of the request opens: a request waiting for the
catalog must not hold a pooled connection idle in a transaction.

A published version's content never changes, so each process keeps the copies it has read
(:data:`COPIES`, bounded): handlers and later steps bound to a version read no row for it.
Whether a version may still be applied for (``withdrawn_at``) does change: the entry points
read that from the row, never from the process's copy.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.catalog.api_v1 import (
    PublishedBundle,
    PublishedVersion,
    bundle_version_path,
    current_item_path,
    item_version_path,
)
from intake_service import repository
from intake_service.models import BundleVersionCopy, ItemVersionCopy
from wangban.errors import ServiceUnavailable
from wangban.http import ServiceCalls
from wangban.settings import Settings


class Sessions(Protocol):
    """Where copies are read (``read_sessionmaker``: autocommit, outside any transaction) and a
    learnt one is written (``sessionmaker``): :class:`wangban.db.Database`; the intake tests
    pass sessions that join the test's own transaction, which is rolled back after it."""

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def read_sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...


class VersionCopies:
    """Item versions by id, as this process has read them: the content, which never changes
    once published; ``withdrawn_at`` as of that read (see the module's docstring). The least
    recently used go first beyond ``size``: a catalogue has a few thousand items, of which a
    few hundred are applied for on any day."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._copies: OrderedDict[str, ItemVersionCopy] = OrderedDict()

    def get(self, version_id: str) -> ItemVersionCopy | None:
        found = self._copies.get(version_id)
        if found is not None:
            self._copies.move_to_end(version_id)
        return found

    def keep(self, row: ItemVersionCopy) -> ItemVersionCopy:
        """A copy of ``row`` that belongs to no session (the row's session may end, or change
        it), kept and returned."""
        copy = ItemVersionCopy(
            **{c.key: getattr(row, c.key) for c in ItemVersionCopy.__table__.columns}
        )
        self._copies[copy.version_id] = copy
        self._copies.move_to_end(copy.version_id)
        while len(self._copies) > self._size:
            self._copies.popitem(last=False)
        return copy

    def forget_item(self, item_id: str) -> None:
        """The item was withdrawn: its versions are read again when next needed."""
        for version_id in [v for v, c in self._copies.items() if c.item_id == item_id]:
            del self._copies[version_id]


COPIES: Final = VersionCopies()
"""This process's copies (the consumers and the routes share them)."""


async def version_content(session: AsyncSession, version_id: str) -> ItemVersionCopy | None:
    """Version ``version_id`` for what it says (form, materials, result, time limits): the
    process's copy, read once. Not for whether it may still be applied for: its
    ``withdrawn_at`` may be older than the row's."""
    found = COPIES.get(version_id)
    if found is None and version_id:
        row = await repository.item_version(session, version_id)
        found = None if row is None else COPIES.keep(row)
    return found


class CatalogUnavailable(ServiceUnavailable):
    type_slug = "catalog-unavailable"
    title = "事项目录服务暂时不可用"

    def __init__(self) -> None:
        super().__init__("暂时无法读取办事事项，请稍后重试")


def catalog_calls(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> ServiceCalls:
    """Intake's calls to the catalog: a published version is nobody's data, so no person goes
    along; :class:`CatalogUnavailable` (503) when the catalog cannot answer."""
    return ServiceCalls(
        settings,
        "catalog",
        caller="intake",
        unavailable=CatalogUnavailable,
        send_actor=False,
        transport=transport,
    )


async def published_version(catalog: ServiceCalls, version_id: str) -> PublishedVersion | None:
    """The catalog's published version ``version_id``; ``None`` when it has none."""
    path = item_version_path(version_id)
    body = None if path is None else await catalog.fetch(path)
    return None if body is None else PublishedVersion.from_answer(body)


async def current_published(
    catalog: ServiceCalls, implementing_code: str
) -> PublishedVersion | None:
    """The catalog's current published version of the item with this implementing code;
    ``None`` when it has none (no such item, or withdrawn)."""
    path = current_item_path(implementing_code)
    body = None if path is None else await catalog.fetch(path)
    found = None if body is None else PublishedVersion.from_answer(body)
    return None if found is None or found.withdrawn_at is not None else found


async def published_bundle(catalog: ServiceCalls, version_id: str) -> PublishedBundle | None:
    """The catalog's published bundle version ``version_id``; ``None`` when it has none."""
    path = bundle_version_path(version_id)
    body = None if path is None else await catalog.fetch(path)
    return None if body is None else PublishedBundle.if_published(body)


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


def bundle_copy_values(bundle: PublishedBundle) -> dict[str, object]:
    return {
        "version_id": bundle.version_id,
        "bundle_id": bundle.bundle_id,
        "code": bundle.code,
        "name": str(bundle.content.get("name", "")),
        "member_version_ids": bundle.member_version_ids,
        "content": bundle.content,
        "published_at": bundle.published_at,
    }


async def known_version(
    database: Sessions, *, catalog: ServiceCalls, version_id: str
) -> ItemVersionCopy | None:
    """Intake's copy of item version ``version_id``, learnt from the catalog when intake has
    none yet; ``None`` when the catalog has no such published version either. Raises
    ``CatalogUnavailable`` (503) when the copy is missing and the catalog cannot answer."""
    async with database.read_sessionmaker() as reads:
        found = await repository.item_version(reads, version_id)
    if found is not None:
        return COPIES.keep(found)
    if not version_id:
        return None
    return await learn_version(database, catalog=catalog, version_id=version_id)


async def current_version(
    database: Sessions, *, catalog: ServiceCalls, implementing_code: str
) -> ItemVersionCopy | None:
    """The version of the item with this implementing code that applications are made for
    now: the latest one intake's copy has, learnt from the catalog when intake has none of the
    item yet (just published, intake just started); ``None`` when the item is unknown to both
    or withdrawn. A newer version intake has not read yet is not looked for: the copy follows
    the catalogue by its events, as it does for withdrawals. Raises ``CatalogUnavailable``
    (503) when the copy has nothing and the catalog cannot answer.

    One indexed read of the latest version's id and withdrawal, always: which version is
    current and whether it is withdrawn change, and a process-wide cache of them would answer
    from before a change another replica's consumer read (applications bound to a superseded
    version or made for a withdrawn item). The content comes from :data:`COPIES`."""
    async with database.read_sessionmaker() as reads:
        current = await repository.current_item_version_id(reads, implementing_code)
        if current is not None:
            version_id, withdrawn_at = current
            return None if withdrawn_at is not None else await version_content(reads, version_id)
    learnt = await current_published(catalog, implementing_code)
    return None if learnt is None else await _keep(database, learnt)


async def known_bundle(
    database: Sessions, *, catalog: ServiceCalls, version_id: str
) -> BundleVersionCopy | None:
    """Intake's copy of bundle version ``version_id`` (learnt from the catalog when intake has
    none yet), with a copy of each of its member versions (learnt likewise: the bundle's event
    and its members' are not ordered with each other either); ``None`` when the catalog has no
    such published bundle. A member the catalog does not have either stays missing, for the
    caller to refuse. Raises ``CatalogUnavailable`` (503) when a copy is missing and the
    catalog cannot answer."""
    async with database.read_sessionmaker() as reads:
        bundle = await repository.bundle_version(reads, version_id)
    if bundle is None and version_id:
        bundle = await learn_bundle(database, catalog=catalog, version_id=version_id)
    if bundle is not None:
        for member_id in bundle.member_version_ids:
            await known_version(database, catalog=catalog, version_id=member_id)
    return bundle


async def learn_version(
    database: Sessions, *, catalog: ServiceCalls, version_id: str
) -> ItemVersionCopy | None:
    """The version as the catalog publishes it, kept as intake's copy; ``None`` when the
    catalog has no such published version. Raises ``CatalogUnavailable`` (503) when the catalog
    cannot answer. The copy is written in its own short transaction (idempotent, like the
    event's), before any transaction of the request opens."""
    found = await published_version(catalog, version_id)
    return None if found is None else await _keep(database, found)


async def _keep(database: Sessions, version: PublishedVersion) -> ItemVersionCopy | None:
    """Keep ``version`` as intake's copy, in its own short transaction (idempotent, like the
    event's), before any transaction of the request opens; the copy as stored."""
    async with database.sessionmaker() as session, session.begin():
        await repository.save_item_version(session, copy_values(version))
    async with database.read_sessionmaker() as session:
        found = await repository.item_version(session, version.version_id)
    return None if found is None else COPIES.keep(found)


async def learn_bundle(
    database: Sessions, *, catalog: ServiceCalls, version_id: str
) -> BundleVersionCopy | None:
    """The bundle version as the catalog publishes it, kept as intake's copy, as
    :func:`learn_version` keeps an item version."""
    found = await published_bundle(catalog, version_id)
    if found is None:
        return None
    async with database.sessionmaker() as session, session.begin():
        await repository.save_bundle_version(session, bundle_copy_values(found))
    async with database.read_sessionmaker() as session:
        return await repository.bundle_version(session, version_id)
