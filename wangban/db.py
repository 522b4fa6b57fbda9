"""One async engine per process, one session per unit of work.

Services flush, never commit: the unit of work (a request, a consumer's handler) commits once at
its boundary, so a state change and the outbox rows it produced land in the same transaction.

A unit of work's transaction begins at its first write, not its first read: plain reads before
it run in autocommit on a connection taken for that statement alone (see
:class:`WritesBeginTransaction`), so a route that reads, asks another service and then writes
holds neither a transaction nor a pooled connection while the other service answers. The kit's
HTTP clients check that (:func:`check_no_transaction`): in tests a call made while the task holds
an open transaction fails, in production it is logged once per call site and counted.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from typing import Annotated, Any, Final, Literal

from fastapi import Depends, Request
from sqlalchemy import event, func, literal, select, text, union_all
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection, QueuePool
from sqlalchemy.sql import ClauseElement, visitors
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import CTE, CompoundSelect, Select, Subquery
from sqlalchemy.types import TypeEngine

from wangban.errors import Problem
from wangban.settings import Settings

logger = logging.getLogger(__name__)

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


# --- transactions held across remote calls ------------------------------------------------------

GuardMode = Literal["raise", "warn"]


class TransactionHeldAcrossCall(RuntimeError):
    """A call to another service (or a department's system) was about to be made while the
    calling task holds an open database transaction: a programming error, raised where the
    guard is set to ``raise`` (the test suite). Restructure the code as read → call → write."""


class _Held:
    """One database transaction begun by a task. Kept in a context variable as a mutable
    object, so the task that began it and any task it spawned meanwhile see it end."""

    __slots__ = ("connection", "open")

    def __init__(self, connection: Connection) -> None:
        self.connection = weakref.ref(connection)
        self.open = True

    def holding(self) -> bool:
        # The connection's own state settles it, so a transaction that ended without a commit
        # or rollback event (the connection invalidated, closed) does not count.
        connection = self.connection()
        return (
            self.open
            and connection is not None
            and not connection.closed
            and connection.in_transaction()
        )


_held_var: ContextVar[tuple[_Held, ...]] = ContextVar("wangban_held_transactions", default=())
_held_by_connection: weakref.WeakKeyDictionary[Connection, _Held] = weakref.WeakKeyDictionary()


@event.listens_for(Engine, "begin")
def _transaction_began(connection: Connection) -> None:
    # Runs inside SQLAlchemy's greenlet, which shares the calling task's contextvars Context
    # (greenlet_spawn gives it the driver's gr_context), so setting the variable here is seen
    # by the task (tests/kit/test_transaction_guard.py checks that this stays true).
    if connection._is_autocommit_isolation():
        return  # an autocommit connection holds no transaction between statements
    held = _Held(connection)
    _held_by_connection[connection] = held
    _held_var.set((*(h for h in _held_var.get() if h.holding()), held))


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _transaction_ended(connection: Connection) -> None:
    held = _held_by_connection.pop(connection, None)
    if held is not None:
        held.open = False


def holds_transaction() -> bool:
    """Whether the current task (or the task that spawned it, while it does) holds an open
    database transaction."""
    return any(h.holding() for h in _held_var.get())


class _Guard:
    """The process's policy and its counts, per call site."""

    def __init__(self) -> None:
        self.mode: GuardMode = "warn"
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, *, call: str, site: str) -> bool:
        """Count one offence; True the first time this call site offends."""
        with self._lock:
            key = (call, site)
            first = key not in self.counts
            self.counts[key] += 1
            return first


GUARD: Final = _Guard()


def configure_transaction_guard(mode: GuardMode) -> None:
    GUARD.mode = mode


# Frames of the machinery between a call site and the check: not where the call was written.
_MACHINERY: Final = (
    "/httpx/",
    "/httpcore/",
    "/anyio/",
    "/asyncio/",
    "/contextlib.py",
    "/wangban/db.py",
    "/wangban/http.py",
    "/wangban/wechat.py",  # the kit's clients of outside systems
    "/wangban/storage.py",
)


def _call_site() -> str:
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename.replace("\\", "/")
        if not any(part in filename for part in _MACHINERY):
            return f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "unknown"


def check_no_transaction(call: str, *, detail: str = "", mode: GuardMode | None = None) -> None:
    """Before a remote call: the calling task must hold no open database transaction, or the
    transaction (a pooled connection, a snapshot, any row locks) waits as long as the callee.

    ``call`` names the kind of call (it labels the metric: no ids in it), ``detail`` the
    particular one (a path). ``mode`` overrides the process's ``WANGBAN_TRANSACTION_GUARD``."""
    if not holds_transaction():
        return
    site = _call_site()
    message = (
        f"{call} {detail}".rstrip()
        + f": called at {site} while the task holds an open database transaction; "
        "read (autocommit) → call → write, or commit before calling"
    )
    if (mode or GUARD.mode) == "raise":
        raise TransactionHeldAcrossCall(message)
    if GUARD.record(call=call, site=site):
        logger.warning(message)


# --- sessions whose transaction begins at the first write ----------------------------------------

# Functions that act although they are SELECTed: run in the transaction, never in autocommit
# (a transaction-scoped advisory lock taken in autocommit would be released at once).
_ACTING_FUNCTIONS: Final = ("pg_advisory", "pg_try_advisory", "pg_notify", "nextval", "setval")


def _plain_read(clause: ClauseElement | None) -> bool:
    """A SELECT that neither locks rows (FOR UPDATE/SHARE) nor calls a function that acts.
    Raw SQL (``text``) is never taken for one: its effect is unknown."""
    if isinstance(clause, CompoundSelect):
        return all(_plain_read(s) for s in clause.selects)
    if not isinstance(clause, Select) or clause._for_update_arg is not None:
        return False
    for column in clause._raw_columns:
        name = getattr(column, "name", None) if isinstance(column, FunctionElement) else None
        if name is not None and str(name).startswith(_ACTING_FUNCTIONS):
            return False
    # A SELECT over a data-modifying CTE (WITH x AS (INSERT … RETURNING …) SELECT …) writes:
    # it belongs in the unit of work's transaction like any INSERT.
    return not any(
        isinstance(element, CTE) and isinstance(element.element, UpdateBase)
        for element in visitors.iterate(clause)
    )


def literal_rows(
    columns: Sequence[tuple[str, TypeEngine[Any]]], rows: Sequence[Sequence[Any]], *, name: str
) -> Subquery:
    """Rows given in Python as a selectable (``SELECT $1, $2 UNION ALL SELECT $3, $4 …``), typed
    like ``columns``, to INSERT … SELECT from in a statement that writes several tables at once.

    Not SQLAlchemy's ``values()``: a VALUES construct has no cache key, so every statement
    holding one was compiled again on every execution (intake's one-statement submission spent
    a quarter of its CPU there). Literals are bound parameters here, so the statement is
    compiled once per shape (per number of rows) and then taken from the cache."""
    if not rows:
        raise ValueError("literal_rows needs at least one row")
    selects = [
        select(
            *(
                literal(value, type_).label(column)
                for (column, type_), value in zip(columns, row, strict=True)
            )
        )
        for row in rows
    ]
    if len(selects) == 1:
        return selects[0].subquery(name)
    return union_all(*selects).subquery(name)


class WritesBeginTransaction(Session):
    """A session whose transaction begins with its first write.

    Until the session first needs its transactional connection (a flush, an INSERT/UPDATE/
    DELETE, a SELECT … FOR UPDATE, an advisory lock, raw SQL, ``session.connection()``), a
    plain SELECT runs on a connection taken from the pool in autocommit for that statement
    alone and given back when it has been read. Objects it loads join the session's identity
    map as usual, so changing them and flushing writes in the transaction. From the first write
    on, every statement runs in the transaction, so what the unit of work reads after writing
    (and what it locks) is consistent with what it wrote, and the outbox rows it publishes
    commit with it.

    Under READ COMMITTED each statement sees the data committed before it started, in a
    transaction or not, so the reads see what they saw before; what changes is that nothing is
    held between them: no BEGIN, no "idle in transaction" backend and no pooled connection
    while the route waits for another service (:func:`check_no_transaction`).
    """

    def __init__(self, *args: Any, reads: Engine | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._reads = reads
        self._writing = False
        self._read_connections: list[Connection] = []
        self._depth = 0

    def get_bind(self, mapper: Any = None, *, clause: Any = None, **kw: Any) -> Any:
        if (
            self._reads is not None
            and not self._writing
            and kw.get("bind") is None
            and _plain_read(clause)
        ):
            return self._reads
        return super().get_bind(mapper, clause=clause, **kw)

    def _connection_for_bind(
        self, engine: Any, execution_options: Any = None, **kw: Any
    ) -> Connection:
        if self._reads is not None and engine is self._reads:
            # Not part of the session's transaction: returned to the pool after the statement.
            connection = self._reads.connect()
            self._read_connections.append(connection)
            return connection
        return super()._connection_for_bind(engine, execution_options, **kw)

    def _execute_internal(self, *args: Any, **kw: Any) -> Any:
        # Eager loads run their own statements inside the outer one: the read connections are
        # given back once the outermost statement is done (its rows are buffered by then).
        self._depth += 1
        try:
            return super()._execute_internal(*args, **kw)
        finally:
            self._depth -= 1
            if not self._depth:
                while self._read_connections:
                    self._read_connections.pop().close()


@event.listens_for(WritesBeginTransaction, "after_begin")
def _transaction_connected(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    # Whatever took the transactional connection (a flush as much as an execute): from now on
    # every statement runs in the transaction.
    if isinstance(session, WritesBeginTransaction):
        session._writing = True


@event.listens_for(WritesBeginTransaction, "after_transaction_end")
def _transaction_over(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and isinstance(session, WritesBeginTransaction):
        session._writing = False  # the next unit of work on this session reads in autocommit


PoolObserver = Callable[[float, bool], None]
"""Told of every checkout: how long it took (seconds), and whether it gave up waiting."""


class TimedPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's pool for asyncio, timing every checkout.

    The pool's gauges say how many connections are out; only the time a unit of work waited
    for one says whether requests are queueing behind the pool (all out for a few
    milliseconds at a time is harmless, seconds of waiting are not). SQLAlchemy has no event
    before a checkout, so the pool's ``connect`` is timed here: waiting for a free connection,
    or opening a new one within the overflow, until it is handed out."""

    observer: PoolObserver | None = None
    """Set by ``Metrics.watch_pool``; kept when the engine recreates its pool."""

    def connect(self) -> PoolProxiedConnection:
        started = time.perf_counter()
        try:
            connection = super().connect()
        except sa_exc.TimeoutError:
            # Every connection stayed out for the whole pool timeout: the unit answers 503.
            if self.observer is not None:
                self.observer(time.perf_counter() - started, True)
            raise
        if self.observer is not None:
            self.observer(time.perf_counter() - started, False)
        return connection

    def recreate(self) -> QueuePool:
        pool = super().recreate()
        if isinstance(pool, TimedPool):
            pool.observer = self.observer
        return pool


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
            poolclass=TimedPool,
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
        # Reads run each statement on its own, in autocommit: no BEGIN and no ROLLBACK round
        # trip around a single SELECT. Same pool; the isolation setting is a flag on the
        # connection, reset when it goes back to the pool.
        autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # A unit of work reads in autocommit until its first write (WritesBeginTransaction).
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            autoflush=False,
            sync_session_class=WritesBeginTransaction,
            reads=autocommit.sync_engine,
        )
        # Routes and hot paths (catalogue search) that only read.
        self.read_sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            autocommit, expire_on_commit=False, autoflush=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        configure_transaction_guard(settings.transaction_guard)
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


@contextlib.asynccontextmanager
async def advisory_lock(
    engine: AsyncEngine, name: str, *, wait: bool = True
) -> AsyncIterator[AsyncConnection | None]:
    """Hold PostgreSQL's advisory lock on ``name`` (across processes and replicas) while the
    block runs, with no transaction open: for "only one of us does this" around a call to an
    outside system (the WeChat token, the audit checkpoint's object store).

    The lock is session-level, on a connection of its own in autocommit, not a transaction's:
    a transaction-scoped lock would hold a transaction (and the kit's guard would refuse the
    call) for as long as the outside system takes. Yields that connection (each statement on
    it commits on its own), or None when ``wait`` is false and another holder has the lock.
    """
    key = func.hashtext(name)
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        if wait:
            await connection.execute(select(func.pg_advisory_lock(key)))
        elif not await connection.scalar(select(func.pg_try_advisory_lock(key))):
            yield None
            return
        try:
            yield connection
        finally:
            try:
                await connection.execute(select(func.pg_advisory_unlock(key)))
            except BaseException:
                # A session lock outlives the statement: a connection that may still hold it
                # must not go back to the pool. Closed, it releases the lock.
                await connection.invalidate()
                raise


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
