"""How tests see a transaction held across a call: PostgreSQL's own view of its backends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import text

from wangban.db import Database


async def idle_in_transaction(database: Database, *, longer_than_s: float) -> int:
    """Backends idle in a transaction for longer than ``longer_than_s``: waiting for a call,
    not between two statements of a short transaction."""
    async with database.read_sessionmaker() as reads:
        count = await reads.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'idle in transaction' "
                "AND now() - state_change > make_interval(secs => :waited)"
            ),
            {"waited": longer_than_s},
        )
        return int(count or 0)


@contextlib.asynccontextmanager
async def watching_idle_in_transaction(
    database: Database, *, longer_than_s: float
) -> AsyncIterator[list[int]]:
    """Samples of :func:`idle_in_transaction`, every 50 ms while the block runs."""
    samples: list[int] = []

    async def watch() -> None:
        while True:
            samples.append(await idle_in_transaction(database, longer_than_s=longer_than_s))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        yield samples
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
