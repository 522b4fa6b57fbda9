"""Import jobs in the catalogue (issue 18, defect 9): a job whose process died while running is
run again once its lease runs out, and failed after too many attempts; the list's 主项 links a
main item to its sub-items on the public item page. The worker of a running catalogue waits,
asking the database nothing, until a job is stored here or in another process (issue 20)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import jobs, review, service
from catalog_service.models import Item, Job
from catalog_service.schemas import ItemContent
from tests.catalog.support import rich_item
from tests.kit.support import eventually
from wangban.app import Runtime, create_service_app
from wangban.db import Database, _read_only
from wangban.services import load_spec
from wangban.settings import Settings

PLATFORM = review.Actor(subject="s-platform", department=None, region=None, platform=True)


async def _queue(database: Database, codes: list[str]) -> str:
    body = json.dumps([rich_item(code) for code in codes], ensure_ascii=False).encode()
    async with database.sessionmaker() as session, session.begin():
        job = await jobs.submit_import(
            session,
            data=body,
            materials=None,
            fmt="json",
            mapping="default",
            publish_complete=False,
            actor=PLATFORM,
        )
        return job.id


async def _job(database: Database, job_id: str) -> Job:
    async with database.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def _items(database: Database, tag: str) -> int:
    async with database.sessionmaker() as session:
        found = await session.execute(
            select(func.count()).select_from(Item).where(Item.implementing_code.like(f"{tag}%"))
        )
        return int(found.scalar_one())


async def _no_jobs_of_other_tests_waiting(database: Database) -> None:
    """Jobs another test queued on an app without its worker are no job of this test: a claim
    takes the oldest job first, so they would be claimed instead of this test's."""
    async with database.sessionmaker() as session, session.begin():
        await session.execute(delete(Job).where(Job.status.in_(("queued", "running"))))


async def test_a_job_whose_process_died_is_run_again_then_failed_after_too_many(
    database: Database, settings: Settings
) -> None:
    await _no_jobs_of_other_tests_waiting(database)
    tag = f"JOB-{uuid.uuid4().hex[:8]}"
    job_id = await _queue(database, [f"{tag}-1", f"{tag}-2"])
    # A process claims the job and dies: its lease (here none) runs out with nothing committed.
    dying = jobs.JobWorker(database, settings, lease_s=0)
    assert await dying._claim() is not None
    assert (await _job(database, job_id)).status == "running"

    survivor = jobs.JobWorker(database, settings)
    assert await survivor.run_once() == 1
    job = await _job(database, job_id)
    assert (job.status, job.attempts, job.done, job.total) == ("succeeded", 2, 2, 2)
    assert job.result is not None and job.result["created"] == 2
    assert job.upload is None  # the upload is not kept once the job is done
    assert await _items(database, tag) == 2
    # A running job whose lease holds is nobody else's.
    assert await survivor.run_once() == 0

    # A file that kills every process that runs it is given up after MAX_ATTEMPTS claims.
    tag = f"JOB-{uuid.uuid4().hex[:8]}"
    job_id = await _queue(database, [f"{tag}-1"])
    for _ in range(jobs.MAX_ATTEMPTS):
        assert await dying._claim() is not None
    assert await survivor.run_once() == 1
    job = await _job(database, job_id)
    assert job.status == "failed" and job.problem is not None
    assert str(job.problem["type"]).endswith("job-interrupted")
    assert await _items(database, tag) == 0


async def test_an_idle_worker_asks_nothing_until_a_job_is_stored_here_or_elsewhere(
    database: Database, settings: Settings
) -> None:
    await _no_jobs_of_other_tests_waiting(database)
    # The worker on an engine of its own, so that its statements alone are counted; a poll
    # that would come only after an hour, so that nothing but a wake-up can start a job.
    own = Database(settings.database_url or "")
    statements: list[str] = []

    def sent(_conn: Any, _cursor: Any, text: str, *_: Any) -> None:
        statements.append(text)

    event.listen(own.engine.sync_engine, "before_cursor_execute", sent)
    worker = jobs.BackgroundJobs(own, settings, poll_s=3600)
    loop = asyncio.create_task(Runtime._work(worker))

    async def finished(job_id: str) -> bool:
        return (await _job(database, job_id)).status == "succeeded"

    try:
        # Stored and committed in this process: the after-commit hook wakes the worker.
        job_id = await _queue(database, [f"WAKE-{uuid.uuid4().hex[:8]}-1"])
        await eventually(lambda: finished(job_id), timeout_s=30)
        # Idle: over a few seconds (a poll a second before) not one statement.
        statements.clear()
        await asyncio.sleep(2.5)
        assert statements == []
        # Stored by another process: as far as this worker knows, only PostgreSQL's
        # notification at commit tells it.
        jobs._here.discard(worker)
        tag = f"WAKE-{uuid.uuid4().hex[:8]}"
        job_id = await _queue(database, [f"{tag}-1"])
        await eventually(lambda: finished(job_id), timeout_s=30)
        assert await _items(database, tag) == 1
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await worker.close()
        await own.dispose()


@pytest.fixture
async def catalog(settings: Settings, db_session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_service_app(load_spec("catalog"), settings, background=False)

    async def test_session() -> AsyncIterator[AsyncSession]:
        yield db_session

    app.dependency_overrides[_read_only] = test_session
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as http:
            yield http


async def test_a_main_item_lists_its_published_sub_items(
    catalog: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    tag = uuid.uuid4().hex[:8]
    main_name = f"企业设立、变更、注销登记{tag}"
    contents = {
        "main": rich_item(f"MAIN-{tag}", name=main_name),
        "sub1": rich_item(f"SUB1-{tag}", name="企业设立登记", main_item=main_name),
        "sub2": rich_item(f"SUB2-{tag}", name="企业注销登记", main_item=main_name),
        # Another department's item under a 主项 of the same name is not this one's.
        "other": rich_item(
            f"SUB3-{tag}", name="企业变更登记", main_item=main_name, department="东莞市人社局"
        ),
        # A draft is not shown to citizens.
        "draft": rich_item(f"SUB4-{tag}", name="企业备案", main_item=main_name),
    }
    for key, content in contents.items():
        draft = await service.create_item_draft(
            db_session, content=ItemContent.model_validate(content)
        )
        if key != "draft":
            await service.publish_version(db_session, version_id=draft.id)

    main = await catalog.get(f"/items/MAIN-{tag}")
    assert main.status_code == 200, main.text
    assert main.json()["content"]["main_item"] is None
    assert main.json()["sub_items"] == [
        {"implementing_code": f"SUB1-{tag}", "name": "企业设立登记"},
        {"implementing_code": f"SUB2-{tag}", "name": "企业注销登记"},
    ]
    sub = await catalog.get(f"/items/SUB1-{tag}")
    assert sub.json()["content"]["main_item"] == main_name and sub.json()["sub_items"] == []
