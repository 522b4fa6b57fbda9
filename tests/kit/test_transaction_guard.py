"""No transaction across a remote call: a unit of work's transaction begins at its first write,
and the kit's service client refuses (in tests) or reports (in production) a call made while
the calling task holds one.

The callee is a real ASGI app behind the kit's own client; the database is the suite's."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from tests.infrastructure import Infrastructure, make_settings
from tests.kit.support import Kit, make_kit
from wangban.db import (
    GUARD,
    Database,
    TransactionHeldAcrossCall,
    check_no_transaction,
    holds_transaction,
)
from wangban.http import service_client
from wangban.observability import Metrics
from wangban.settings import Settings


def _callee() -> FastAPI:
    app = FastAPI()

    @app.get("/answer")
    async def answer() -> dict[str, int]:
        return {"answer": 42}

    return app


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_callee())
    async with service_client(settings, "catalog", caller="intake", transport=transport) as client:
        yield client


@pytest.fixture
async def kit(database: Database) -> Kit:
    kit = make_kit("guard")
    await kit.create(database)
    return kit


async def _backend_states(database: Database) -> list[str]:
    """The states of this database's other backends (pg_stat_activity, read in autocommit so
    each look is fresh)."""
    async with database.read_sessionmaker() as reads:
        rows = await reads.scalars(
            text(
                "SELECT state FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return [str(s) for s in rows]


async def test_a_call_inside_an_open_transaction_fails_naming_the_call(
    database: Database, client: httpx.AsyncClient, kit: Kit
) -> None:
    async with database.sessionmaker() as session:
        await kit.record(session, "written before the call")
        assert holds_transaction()
        with pytest.raises(TransactionHeldAcrossCall) as refused:
            await client.get("/answer")
        assert "intake → catalog GET /answer" in str(refused.value)
        assert "test_transaction_guard.py" in str(refused.value)  # the call site
        await session.rollback()
        assert not holds_transaction()
        assert (await client.get("/answer")).json() == {"answer": 42}


async def test_reads_before_the_first_write_hold_no_transaction_and_no_connection(
    database: Database, client: httpx.AsyncClient, kit: Kit
) -> None:
    checked_out = database.engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
    async with database.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(kit.ledger))
        assert count == 0
        assert not holds_transaction()
        assert not session.in_transaction() or not session.sync_session._writing  # type: ignore[attr-defined]
        # The read's connection went back to the pool with the statement.
        assert database.engine.sync_engine.pool.checkedout() == checked_out  # type: ignore[attr-defined]
        assert (await client.get("/answer")).status_code == 200


async def test_a_task_spawned_inside_the_transaction_is_refused_too(
    database: Database, client: httpx.AsyncClient, kit: Kit
) -> None:
    async with database.sessionmaker() as session:
        await kit.record(session, "written")
        spawned = asyncio.create_task(client.get("/answer"))
        with pytest.raises(TransactionHeldAcrossCall):
            await spawned
        await session.commit()
        # The transaction it saw has ended: a task spawned back then may call now.
        assert not holds_transaction()
        assert (await client.get("/answer")).status_code == 200


async def test_locking_reads_and_advisory_locks_begin_the_transaction(
    database: Database, client: httpx.AsyncClient, kit: Kit
) -> None:
    async with database.sessionmaker() as session:
        await session.execute(select(kit.ledger).with_for_update())
        assert holds_transaction()
        with pytest.raises(TransactionHeldAcrossCall):
            await client.get("/answer")
    async with database.sessionmaker() as session:
        await session.execute(select(func.pg_advisory_xact_lock(4242)))
        assert holds_transaction()
        # Held until the transaction ends, not released at once in autocommit.
        async with database.engine.connect() as other:
            taken = await other.scalar(select(func.pg_try_advisory_xact_lock(4242)))
            await other.rollback()
        assert taken is False
    assert not holds_transaction()


async def test_read_call_write_commits_the_write_with_its_outbox_row_and_reads_after_it(
    database: Database, client: httpx.AsyncClient, kit: Kit
) -> None:
    note = f"after the call {uuid.uuid4()}"
    async with database.sessionmaker() as session:
        before = await session.scalar(select(func.count()).select_from(kit.ledger))
        answer = (await client.get("/answer")).json()["answer"]
        await kit.record(session, f"{note} {answer}")
        # A read after the write runs in the transaction and sees it.
        mine = await session.scalar(
            select(func.count()).select_from(kit.ledger).where(kit.ledger.c.note.like(f"{note}%"))
        )
        assert mine == 1
        # Not yet visible outside: the write waits for the commit.
        assert await kit.count(database, kit.ledger) == before
        assert await kit.unpublished(database) == 0
        await session.commit()
    assert await kit.count(database, kit.ledger) == (before or 0) + 1
    assert await kit.unpublished(database) == 1

    # And a unit of work that fails after its write leaves neither the row nor its event.
    async with database.sessionmaker() as session:
        await session.scalar(select(func.count()).select_from(kit.ledger))
        await client.get("/answer")
        await kit.record(session, "rolled back")
        await session.rollback()
    assert await kit.count(database, kit.ledger, note="rolled back") == 0
    assert await kit.unpublished(database) == 1


async def test_no_backend_idles_in_transaction_while_a_reading_session_waits_for_a_call(
    database: Database, settings: Settings, kit: Kit
) -> None:
    """The situation of a route that reads, then waits for a slow service."""
    arrived, release = asyncio.Event(), asyncio.Event()
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        arrived.set()
        await release.wait()
        return {"ok": True}

    async with service_client(
        settings, "sharing", caller="intake", transport=httpx.ASGITransport(app=app)
    ) as slow_client:
        async with database.sessionmaker() as session:
            await session.scalar(select(func.count()).select_from(kit.ledger))
            call = asyncio.create_task(slow_client.get("/slow"))
            await arrived.wait()
            assert "idle in transaction" not in await _backend_states(database)
            release.set()
            assert (await call).json() == {"ok": True}
            await kit.record(session, "after the slow call")
            await session.commit()


async def test_in_production_the_offence_is_logged_once_per_call_site_and_counted(
    infrastructure: Infrastructure,
    database: Database,
    kit: Kit,
    caplog: pytest.LogCaptureFixture,
) -> None:
    warn = make_settings(infrastructure, transaction_guard="warn")
    transport = httpx.ASGITransport(app=_callee())
    metrics = Metrics("guard-test")
    async with service_client(warn, "catalog", caller="intake", transport=transport) as client:
        async with database.sessionmaker() as session:
            await kit.record(session, "held")
            with caplog.at_level(logging.WARNING, logger="wangban.db"):
                for _ in range(3):
                    assert (await client.get("/answer")).status_code == 200
            await session.rollback()
    warnings = [r for r in caplog.records if "open database transaction" in r.getMessage()]
    assert len(warnings) == 1
    assert "intake → catalog GET /answer" in warnings[0].getMessage()
    counted = [
        count
        for (call, site), count in GUARD.counts.items()
        if call == "intake → catalog GET" and "test_transaction_guard.py" in site
    ]
    assert counted == [3]
    body, _ = metrics.render()
    assert b"wangban_transaction_held_across_call_total{" in body
    assert b'call="intake \xe2\x86\x92 catalog GET"' in body


def test_the_guard_is_quiet_outside_any_transaction() -> None:
    assert not holds_transaction()
    check_no_transaction("anything", mode="raise")


async def test_a_select_over_a_writing_cte_begins_the_transaction_and_rolls_back_with_it(
    database: Database, kit: Kit
) -> None:
    note = f"written by a CTE {uuid.uuid4()}"
    async with database.sessionmaker() as session:
        written = (
            kit.ledger.insert()
            .values(entry_id=str(uuid.uuid4()), note=note)
            .returning(kit.ledger.c.note)
            .cte("written")
        )
        assert await session.scalar(select(written.c.note)) == note
        # In the unit of work's transaction, not in autocommit on a connection of its own.
        assert holds_transaction()
        await session.rollback()
    async with database.read_sessionmaker() as reads:
        kept = await reads.scalar(
            select(func.count()).select_from(kit.ledger).where(kit.ledger.c.note == note)
        )
    assert kept == 0
