"""Long admin operations as jobs: an import of a whole list takes seconds to minutes (about
8 ms a new item), longer than any gateway waits, so the request only stores the upload and a
``job`` row and answers 202; a background worker in each catalogue process runs it.

- **Claiming.** ``FOR UPDATE SKIP LOCKED`` on queued jobs, so several processes share the work
  and never run one job twice at a time.
- **All or nothing.** The import runs in one transaction of its own, and the job's result is
  written in that same transaction: the items and "succeeded" commit together or not at all.
  Progress (rows done) is written from separate short transactions, so pollers see it while the
  import's transaction is still open.
- **A process that dies.** The worker holds a lease (``LEASE_S``) and renews it with every
  progress report. A job still ``running`` after its lease ran out belonged to a process that
  died (its import transaction died with it, so nothing of it was committed) and is claimed
  again and run from the start; after ``MAX_ATTEMPTS`` claims it is failed instead, so a file
  that kills the process cannot do it forever. Every write of an attempt is conditional on the
  attempt still holding the job, so a slow attempt overtaken by a new claim commits nothing.
- **Woken, not polling.** Jobs are rare (an admin's import), so an idle worker asks the
  database only every ``POLL_S`` (for a job whose lease ran out: its process died and woke no
  one). A new job wakes the workers when it commits: the one of the process that stored it at
  once (an after-commit hook), the others by ``pg_notify``, which PostgreSQL delivers at commit
  to every process's ``LISTEN`` (:class:`BackgroundJobs`).

No HTTP here; the worker opens its own transactions (it is the boundary), the request-side
functions flush, never commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from catalog_service import importer, repository, review
from catalog_service.models import Job
from catalog_service.schemas import JobOut
from wangban.db import Database, asyncpg_dsn
from wangban.errors import NotFound, Problem
from wangban.settings import Settings

logger = logging.getLogger(__name__)

LEASE_S: Final = 60.0
"""How long a claim holds a job without a progress report; progress comes every
``PROGRESS_EVERY`` rows (well under a second), so only a dead process lets it run out."""
MAX_ATTEMPTS: Final = 3
PROGRESS_EVERY: Final = 50
IMPORT: Final = "import"
POLL_S: Final = 60.0
"""How often an idle worker that nobody woke looks for work anyway: a job whose process died
(its lease, ``LEASE_S``, runs out) or a wake-up it missed while its ``LISTEN`` was down."""
RETRY_S: Final = 1.0
"""After a round that failed (the database down), the next one comes this soon."""
CHANNEL: Final = "wangban_catalog_jobs"
"""``pg_notify`` channel: a job was stored (delivered at commit, to every catalogue process)."""
_WAKE_KEY: Final = "catalog.jobs.wake"


class JobNotFound(NotFound):
    type_slug = "job-not-found"
    title = "任务不存在"


class JobInterrupted(Problem):
    type_slug = "job-interrupted"
    title = "任务多次中断，已停止"


class JobFailed(Problem):
    type_slug = "job-failed"
    title = "任务执行出错"


class _Overtaken(Exception):
    """This attempt no longer holds its job (a later claim took it): write nothing."""


def _now() -> datetime:
    return datetime.now(UTC)


async def submit_import(
    session: AsyncSession,
    *,
    data: bytes,
    materials: bytes | None,
    fmt: importer.Format,
    mapping: str,
    publish_complete: bool,
    actor: review.Actor,
) -> Job:
    """Store the upload as a queued import job. ``mapping`` was resolved once already (an
    unknown one is the request's error), and is resolved again by the worker."""
    job = Job(
        id=str(uuid.uuid4()),
        kind=IMPORT,
        status="queued",
        params={
            "format": fmt,
            "mapping": mapping,
            "publish_complete": publish_complete,
            "actor": {
                "subject": actor.subject,
                "department": actor.department,
                "region": actor.region,
                "platform": actor.platform,
            },
        },
        upload=data,
        materials=materials,
        done=0,
        errors=[],
        attempts=0,
        actor=actor.subject,
        department=actor.department,
        # Set here, not by the database, so the 202 answer shows it without a reload.
        created_at=_now(),
    )
    session.add(job)
    await session.flush()
    # Delivered when (and only if) the request's transaction commits: the other processes'
    # workers wake; this process's is woken by the after-commit hook below, whether or not its
    # LISTEN connection is up.
    await session.execute(select(func.pg_notify(CHANNEL, job.id)))
    session.sync_session.info[_WAKE_KEY] = True
    return job


_here: weakref.WeakSet[BackgroundJobs] = weakref.WeakSet()
"""The running workers of this process, woken after a job is committed here."""


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_WAKE_KEY, False):
        for worker in list(_here):
            worker.wake()


@event.listens_for(Session, "after_rollback")
def _forget_wake_after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_KEY, None)


async def get_job(session: AsyncSession, *, job_id: str, reader: str, reads_all: bool) -> JobOut:
    """A job for the person who asked for it, a platform admin or an auditor; to anyone else
    it does not exist (404, as another department's items)."""
    job = await repository.get_job(session, job_id)
    if job is None or not (reads_all or job.actor == reader):
        raise JobNotFound()
    return out(job)


def out(job: Job) -> JobOut:
    return JobOut.model_validate(
        {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "total": job.total,
            "done": job.done,
            "errors": job.errors,
            "problem": job.problem,
            "result": job.result,
            "actor": job.actor,
            "attempts": job.attempts,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "updated_at": job.updated_at,
            "finished_at": job.finished_at,
        }
    )


def _failure(problem: Problem) -> dict[str, Any]:
    body = problem.to_body(None, None)
    errors = body.pop("errors", [])
    return {
        "status": "failed",
        "problem": body,
        "errors": errors if isinstance(errors, list) else [],
        "finished_at": _now(),
        "updated_at": _now(),
        "lease_until": None,
        "upload": None,
        "materials": None,
    }


class JobWorker:
    """Runs one job per round (:meth:`run_once`, at once: tests drive it directly); the process
    runs it through :class:`BackgroundJobs`, which waits for work in between."""

    name = "catalog-jobs"

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        interval_s: float = 1.0,
        lease_s: float = LEASE_S,
    ) -> None:
        self.sessions: async_sessionmaker[AsyncSession] = database.sessionmaker
        self.settings = settings
        self.interval_s = interval_s
        self.lease_s = lease_s

    async def close(self) -> None:
        return None

    async def run_once(self) -> int:
        """Claim and run one job; 1 when there was one (the runtime asks again at once)."""
        claimed = await self._claim()
        if claimed is None:
            return 0
        job_id, attempt, interrupted = claimed
        if interrupted:
            await self._finish(
                job_id,
                attempt,
                _failure(
                    JobInterrupted(
                        f"任务已中断 {MAX_ATTEMPTS} 次（服务进程退出），未导入任何事项，请重新提交"
                    )
                ),
            )
            return 1
        try:
            await self._run_import(job_id, attempt)
        except _Overtaken:
            logger.warning("job %s attempt %d was overtaken by a later claim", job_id, attempt)
        except Problem as problem:
            # The import's transaction rolled back: nothing of the file was written.
            await self._finish(job_id, attempt, _failure(problem))
        except Exception:
            logger.exception("job %s failed", job_id)
            await self._finish(
                job_id, attempt, _failure(JobFailed("导入时发生内部错误，未导入任何事项"))
            )
        return 1

    async def _claim(self) -> tuple[str, int, bool] | None:
        async with self.sessions() as session, session.begin():
            job = await repository.claim_job(session, now=_now())
            if job is None:
                return None
            job.status = "running"
            job.attempts += 1
            job.lease_until = _now() + timedelta(seconds=self.lease_s)
            job.started_at = job.started_at or _now()
            job.updated_at = _now()
            return job.id, job.attempts, job.attempts > MAX_ATTEMPTS

    async def _finish(self, job_id: str, attempt: int, values: dict[str, Any]) -> None:
        async with self.sessions() as session, session.begin():
            await repository.update_job(session, job_id=job_id, attempt=attempt, values=values)

    async def _report(self, job_id: str, attempt: int, values: dict[str, Any]) -> None:
        """Progress and the renewed lease, committed at once for pollers to see."""
        values = {
            **values,
            "updated_at": _now(),
            "lease_until": _now() + timedelta(seconds=self.lease_s),
        }
        async with self.sessions() as session, session.begin():
            if not await repository.update_job(
                session, job_id=job_id, attempt=attempt, values=values
            ):
                raise _Overtaken()

    async def _run_import(self, job_id: str, attempt: int) -> None:
        async with self.sessions() as session, session.begin():
            job = await repository.get_job(session, job_id)
            assert job is not None and job.upload is not None
            params = job.params
            upload, materials = job.upload, job.materials
            # Parsing is CPU work (about a second for thousands of rows): off the event loop,
            # so the process keeps answering requests meanwhile.
            parsed = await asyncio.to_thread(
                importer.parse_items,
                upload,
                fmt=_format(params["format"]),
                mapping=importer.resolve_mapping(str(params["mapping"])),
                materials=materials,
                max_rows=self.settings.catalog_import_max_rows,
            )
            await self._report(job_id, attempt, {"total": len(parsed.rows), "done": 0})
            actor_params = params["actor"]
            assert isinstance(actor_params, dict)

            async def progress(done: int) -> None:
                await self._report(job_id, attempt, {"done": done})

            report = await importer.apply_rows(
                session,
                parsed=parsed,
                publish_complete=bool(params["publish_complete"]),
                actor=review.Actor(**actor_params),
                progress=progress,
                progress_every=PROGRESS_EVERY,
            )
            # In the import's own transaction: the items and "succeeded" commit together.
            done = await repository.update_job(
                session,
                job_id=job_id,
                attempt=attempt,
                values={
                    "status": "succeeded",
                    "done": report.rows,
                    "result": report.model_dump(mode="json"),
                    "finished_at": _now(),
                    "updated_at": _now(),
                    "lease_until": None,
                    "upload": None,
                    "materials": None,
                },
            )
            if not done:
                raise _Overtaken()


def _format(value: object) -> Literal["csv", "json"]:
    return "csv" if value == "csv" else "json"


class BackgroundJobs:
    """The :class:`JobWorker` as the catalogue process runs it (``ServiceSpec.workers``): each
    round waits until a job is stored (woken in-process or by ``pg_notify``) or ``poll_s`` has
    passed, then runs one job. Idle, it sends one statement every ``poll_s`` instead of one a
    second; a stored job still starts at once."""

    name = "catalog-jobs"
    interval_s = 0.0
    """The runtime's pause between idle rounds: none, ``run_once`` waits itself."""

    def __init__(self, database: Database, settings: Settings, *, poll_s: float = POLL_S) -> None:
        self.jobs = JobWorker(database, settings)
        self.dsn = asyncpg_dsn(database.url)
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._wake.set()  # the first round looks at once: jobs left by a process that died
        self._failed = False
        self._listener: asyncpg.Connection | None = None
        _here.add(self)

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        await self._listen()
        timeout = RETRY_S if self._failed else self.poll_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        self._wake.clear()
        try:
            done = await self.jobs.run_once()
        except Exception:
            self._failed = True
            raise
        self._failed = False
        if done:
            self._wake.set()  # more may be queued: the next round looks at once
        return done

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        try:
            connection = await asyncpg.connect(self.dsn)
            await connection.add_listener(CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:
            # The poll still finds every job, later; the next round tries again.
            logger.warning("catalog jobs: LISTEN unavailable: %r", exc)
            self._failed = True
            return
        self._listener = connection
        # A job stored while no LISTEN was up woke no one here: look once now.
        self._wake.set()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def close(self) -> None:
        _here.discard(self)
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)
        await self.jobs.close()
