"""One async engine per process, one session per unit of work.

Services flush, never commit: the unit of work (a request, a consumer's handler) commits once at
its boundary, so a state change and the outbox rows it produced land in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from wangban.errors import Problem
from wangban.settings import Settings

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_schema(name: str) -> str:
    """Schema names are interpolated into DDL and a few raw statements, so only plain ones pass."""
    if not _SCHEMA_NAME.match(name):
        raise ValueError(f"invalid schema name {name!r}")
    return name


def async_url(url: str) -> URL:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
    return parsed


def asyncpg_dsn(url: str | URL) -> str:
    """The same database as a plain asyncpg DSN (for LISTEN connections)."""
    parsed = async_url(str(url)) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    """The process's engine and session factory."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_timeout_s: float = 10.0,
        pre_ping: bool = False,
        echo: bool = False,
    ):
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            # How long a request (or a relay round, or a handler) waits for a free connection
            # before it fails as 503 Service Unavailable: under overload, answering "busy, retry"
            # in seconds serves a client better than holding it for SQLAlchemy's 30 s.
            pool_timeout=pool_timeout_s,
            # Off by default: a ping is a round trip on every checkout (every request, relay
            # round and consumed event). Without it a connection that died is found by the
            # unit of work that uses it, which fails as 503 (retryable) and discards it.
            pool_pre_ping=pre_ping,
            echo=echo,
        )
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False, autoflush=False
        )
        # Reads on hot paths (catalogue search) run each statement on its own, in autocommit:
        # no BEGIN and no ROLLBACK round trip around a single SELECT. Same pool; the isolation
        # setting is a flag on the connection, reset when it goes back to the pool.
        self.read_sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
            autoflush=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        if not settings.database_url:
            raise RuntimeError(
                "WANGBAN_DATABASE_URL is not set; `wangban up` starts the embedded PostgreSQL"
            )
        return cls(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout_s=settings.database_pool_timeout_s,
            pre_ping=settings.database_pre_ping,
            echo=settings.database_echo,
        )

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def _unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        try:
            yield session
        except Problem as problem:
            if problem.keeps_changes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        # Commit before the response is sent (scope="function"), so a client never sees 200
        # for a change that then failed to commit.
        await session.commit()


UnitOfWork = Annotated[AsyncSession, Depends(_unit_of_work, scope="function")]
"""Route parameter type: the request's session, committed once when the route returns."""


async def _read_only(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    async with database.read_sessionmaker() as session:
        yield session


ReadSession = Annotated[AsyncSession, Depends(_read_only)]
"""Route parameter type for routes that only read: autocommit, so each statement sees the latest
committed data on its own (no transaction, no snapshot shared between statements) and nothing
the route does is ever held back for a commit. Never write through it: a write would be
committed at once, outside any unit of work and without its outbox row."""
