"""Running the catalogue's import jobs in tests.

Gateway tests run the services without their background machinery, and the catalogue tests that
use ``db_session`` keep everything inside one rolled-back transaction; these helpers run the
real :class:`~catalog_service.jobs.JobWorker` in both settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalog_service.jobs import JobWorker
from wangban.app import Runtime
from wangban.db import Database
from wangban.settings import Settings

FINISHED = ("succeeded", "failed")


async def worker_in_test_transaction(
    session: AsyncSession, database: Database, settings: Settings
) -> JobWorker:
    """A worker whose transactions are savepoints inside the test's rolled-back transaction,
    so it sees the jobs the test's requests stored and leaves no trace."""
    worker = JobWorker(database, settings)
    worker.sessions = async_sessionmaker(
        bind=await session.connection(),
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )
    return worker


async def drain(worker: JobWorker) -> int:
    """Run queued jobs until none is left; how many ran."""
    ran = 0
    while await worker.run_once():
        ran += 1
    return ran


@contextlib.asynccontextmanager
async def running_worker(database: Database, settings: Settings) -> AsyncIterator[JobWorker]:
    """The worker looping in the background as in a running catalogue process."""
    worker = JobWorker(database, settings, interval_s=0.05)
    task = asyncio.create_task(Runtime._work(worker))
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def poll(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], *, seen: list[Any] | None = None
) -> dict[str, Any]:
    """GET the job until it is finished; every answer's status code and job status go into
    ``seen``. Bounded by a number of rounds, not by a clock assertion."""
    for _ in range(3000):
        answer = await client.get(url, headers=headers)
        if seen is not None:
            seen.append((answer.status_code, answer.json().get("status")))
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if job["status"] in FINISHED:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {url} did not finish")
