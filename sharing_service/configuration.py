"""The registry as each process keeps it: read on every lookup and issue, changed rarely.

Datasets, the access policy (grants), providers, certificate types and signing keys were read
from PostgreSQL on every lookup and every certificate (five to seven statements per 秒批
application). A running sharing process keeps them here, with the item version copies
material resolution reads (a copy never changes once stored).

**When a copy stops being used.** A change to those tables — a grant withdrawn, a provider
switched off, a key rotated — must stop working at once, not after a TTL. So:

* a trigger on each cached table (``sharing_0006``) notifies ``wangban_sharing_configuration``
  when a change commits, whoever made it (another replica, an operator in ``psql``), and every
  process LISTENs on a connection of its own: a replica drops its copy within the time the
  notification takes to arrive (milliseconds);
* the process that makes a change drops its copy as soon as its transaction commits (an
  ``after_commit`` hook), so its next request never sees the old value;
* a process whose listening connection is down does not use its copy at all (each read goes
  to the database) and starts empty once it listens again, since it may have missed changes.

A short TTL or a version row read per request were the alternatives: the first leaves a
withdrawn grant working for the TTL on every other replica, the second costs a statement per
lookup, which is what this module removes.

Only a running service (``ServiceSpec.workers``: :class:`ConfigurationCache` is the worker
that keeps the listening connection) has a cache; sessions of anything else (tests on their
own connection, tools) read through, as before. The cache is found by the session's
connection pool, so a unit of work of the app and its consumer's handler share it.

Cached rows are detached copies, read in a session of the cache's own: read them, never
change them (changes go through :mod:`sharing_service.registry` on the caller's session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Final, TypeVar

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sharing_service import repository
from sharing_service.models import (
    AccessGrant,
    CertificateType,
    Dataset,
    ItemVersionCopy,
    Provider,
    SigningKey,
)
from wangban.db import Database, asyncpg_dsn
from wangban.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL: Final = "wangban_sharing_configuration"
CACHED: Final = (Provider, Dataset, AccessGrant, CertificateType, SigningKey)
"""The models whose rows are cached, and whose changes (the trigger's tables) drop them."""
CACHED_TABLES: Final = tuple(str(model.__tablename__) for model in CACHED)
MAX_ENTRIES: Final = 10_000
"""A bound on what unknown keys (a dataset code nobody registered) can make the cache hold."""
MAX_VERSIONS: Final = 1_000

_generations: dict[str, int] = {}
"""Per cached table, bumped on every change of it seen in this process: an entry read under an
older generation is not used. Per table, so a key rotation does not drop the access policy;
process-wide, so several apps in one process (tests) drop their copies together."""


def invalidate(table: str | None = None) -> None:
    """Forget the cached rows of ``table`` (every table: None) in this process."""
    for name in (table,) if table is not None else CACHED_TABLES:
        _generations[name] = _generations.get(name, 0) + 1


def _generation(table: str) -> int:
    return _generations.get(table, 0)


_CHANGED: Final = "wangban.sharing.configuration_changed"


def changed(session: AsyncSession, table: str) -> None:
    """Mark the session as changing ``table`` with a statement the flush hook does not see
    (a Core UPDATE): the process's copies are dropped when it commits."""
    session.sync_session.info.setdefault(_CHANGED, set()).add(table)


@event.listens_for(Session, "after_flush")
def _note_registry_changes(session: Session, _context: object) -> None:
    for instance in (*session.new, *session.dirty, *session.deleted):
        if isinstance(instance, CACHED):
            session.info.setdefault(_CHANGED, set()).add(instance.__tablename__)


@event.listens_for(Session, "after_commit")
def _drop_after_commit(session: Session) -> None:
    for table in session.info.pop(_CHANGED, ()):
        invalidate(table)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


_caches: weakref.WeakKeyDictionary[Any, ConfigurationCache] = weakref.WeakKeyDictionary()


def cache_for(session: AsyncSession) -> ConfigurationCache | None:
    """The running cache of the database this session reads (by its connection pool: the
    app's units of work, read sessions and handlers alike), or None."""
    engine = getattr(session.bind, "sync_engine", None)
    pool = getattr(engine, "pool", None)
    return _caches.get(pool) if pool is not None else None


class ConfigurationCache:
    """The process's copy of the registry, and the background worker that keeps the LISTEN
    connection its invalidation needs (reconnecting every ``interval_s`` when it is lost)."""

    name = "configuration-watch"

    def __init__(
        self, database: Database, settings: Settings | None = None, *, interval_s: float = 1.0
    ):
        self.interval_s = interval_s
        self._database = database
        self._entries: dict[Hashable, tuple[int, Any]] = {}
        self._versions: dict[str, ItemVersionCopy] = {}
        self._listener: asyncpg.Connection | None = None
        _caches[database.engine.sync_engine.pool] = self

    # --- the worker ----------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def run_once(self) -> int:
        if self.listening:
            return 0
        self._listener = None
        try:
            connection = await asyncpg.connect(asyncpg_dsn(self._database.url))
            await connection.add_listener(CHANNEL, self._on_change)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning(
                "configuration LISTEN unavailable; reading the registry uncached",
                extra={"fields": {"error": repr(exc)}},
            )
            return 0
        self._listener = connection
        # Whatever changed while nobody listened was missed: start empty.
        invalidate()
        return 0

    def _on_change(self, _connection: object, _pid: object, _channel: str, table: str) -> None:
        invalidate(table if table in CACHED_TABLES else None)

    async def close(self) -> None:
        _caches.pop(self._database.engine.sync_engine.pool, None)
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), timeout=2)

    # --- reads ---------------------------------------------------------------------------

    async def _read(self, load: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._database.read_sessionmaker() as session:
            return await load(session)

    async def _cached(
        self, table: str, key: Hashable, load: Callable[[AsyncSession], Awaitable[T]]
    ) -> T:
        if not self.listening:
            return await self._read(load)
        # The generation before the read: a change committed while the row is being read
        # makes this entry stale at once, never a fresh-looking copy of the old row.
        generation = _generation(table)
        key = (table, key)
        hit = self._entries.get(key)
        if hit is not None and hit[0] == generation:
            value: T = hit[1]
            return value
        value = await self._read(load)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (generation, value)
        return value

    async def dataset(self, code: str) -> Dataset | None:
        return await self._cached("dataset", code, lambda s: repository.dataset(s, code))

    async def grant(
        self, *, consumer: str, dataset_code: str, item_code: str
    ) -> AccessGrant | None:
        return await self._cached(
            "access_grant",
            (consumer, dataset_code, item_code),
            lambda s: repository.grant(
                s, consumer=consumer, dataset_code=dataset_code, item_code=item_code
            ),
        )

    async def provider(self, code: str) -> Provider | None:
        return await self._cached("provider", code, lambda s: repository.provider(s, code))

    async def certificate_type(self, code: str) -> CertificateType | None:
        return await self._cached(
            "certificate_type", code, lambda s: repository.certificate_type(s, code)
        )

    async def active_signing_key(self, issuer_code: str) -> SigningKey | None:
        return await self._cached(
            "signing_key",
            ("active", issuer_code),
            lambda s: repository.active_signing_key(s, issuer_code),
        )

    async def signing_key(self, kid: str) -> SigningKey | None:
        return await self._cached(
            "signing_key", ("kid", kid), lambda s: repository.signing_key(s, kid)
        )

    async def item_version(self, version_id: str) -> ItemVersionCopy | None:
        # A stored copy never changes (one row per published version, written once): kept
        # whatever the generation. A missing one is not remembered: it may arrive any moment.
        found = self._versions.get(version_id)
        if found is not None:
            return found
        found = await self._read(lambda s: repository.item_version(s, version_id))
        if found is not None:
            if len(self._versions) >= MAX_VERSIONS:
                self._versions.pop(next(iter(self._versions)))
            self._versions[version_id] = found
        return found


# --- what the service code calls: the cache when the process runs one, else the session --------


async def dataset(session: AsyncSession, code: str) -> Dataset | None:
    cache = cache_for(session)
    return await (cache.dataset(code) if cache else repository.dataset(session, code))


async def grant(
    session: AsyncSession, *, consumer: str, dataset_code: str, item_code: str
) -> AccessGrant | None:
    cache = cache_for(session)
    if cache is None:
        return await repository.grant(
            session, consumer=consumer, dataset_code=dataset_code, item_code=item_code
        )
    return await cache.grant(consumer=consumer, dataset_code=dataset_code, item_code=item_code)


async def provider(session: AsyncSession, code: str) -> Provider | None:
    cache = cache_for(session)
    return await (cache.provider(code) if cache else repository.provider(session, code))


async def certificate_type(session: AsyncSession, code: str) -> CertificateType | None:
    cache = cache_for(session)
    if cache is None:
        return await repository.certificate_type(session, code)
    return await cache.certificate_type(code)


async def active_signing_key(session: AsyncSession, issuer_code: str) -> SigningKey | None:
    cache = cache_for(session)
    if cache is None:
        return await repository.active_signing_key(session, issuer_code)
    return await cache.active_signing_key(issuer_code)


async def signing_key(session: AsyncSession, kid: str) -> SigningKey | None:
    cache = cache_for(session)
    return await (cache.signing_key(kid) if cache else repository.signing_key(session, kid))


async def item_version(session: AsyncSession, version_id: str) -> ItemVersionCopy | None:
    cache = cache_for(session)
    if cache is None:
        return await repository.item_version(session, version_id)
    return await cache.item_version(version_id)
