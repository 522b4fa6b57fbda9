"""Real infrastructure for the whole suite.

PostgreSQL: ``WANGBAN_TEST_DATABASE_URL`` if set, else an embedded pgserver started once per run
(once per worker when the run is parallel, ``-n``: every worker has its own database and broker).
Kafka: ``WANGBAN_TEST_KAFKA_BOOTSTRAP`` if set, else the embedded broker once per run
(``WANGBAN_EMBEDDED_BROKER``: Tansu or librdkafka's mock cluster).
Nothing is skipped for lack of either: the embedded ones are always available.

The producer settings come from the environment like any setting: ``./dev test-idempotent``
runs the kit and reliability tests with ``WANGBAN_KAFKA_IDEMPOTENCE=true`` on the mock cluster
(the production producer: idempotent, acks=all); the report header says which.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.infrastructure import Infrastructure, make_settings
from wangban.db import Database
from wangban.embedded import EmbeddedKafka, EmbeddedPostgres, embedded_broker_kind, free_port
from wangban.settings import Settings

BROWSER_TESTS = "tests/browser/"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, except that every browser test module (both clients) goes to one
    worker: they share one whole platform (``wangban up``) and one browser there, instead of
    two platforms running at once on a 2-core machine and slowing every other test."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BrowserModulesTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = str(super()._split_scope(nodeid))
            return BROWSER_TESTS if scope.startswith(BROWSER_TESTS) else scope

    return BrowserModulesTogether(config, log)


def pytest_report_header(config: pytest.Config) -> str:
    bootstrap = os.environ.get("WANGBAN_TEST_KAFKA_BOOTSTRAP")
    broker = f"external at {bootstrap}" if bootstrap else f"embedded {embedded_broker_kind()}"
    idempotence = "on" if Settings().kafka_idempotence else "off"
    return f"wangban: broker {broker}; producers acks=all, idempotence {idempotence}"


_BACKGROUND_TASKS = ("consumer-", "outbox-relay-", "worker:", "job:", "broker-watch")
"""The names of a service's background tasks (wangban.app.Runtime and its parts)."""


def _alive(task: object) -> bool:
    return isinstance(task, asyncio.Task) and not task.done()


async def _stop_what_is_still_running() -> list[str]:
    """Stop the runtimes (or loose relays and consumers) a test left running, found through
    the collector: only called once their tasks showed up, so the walk is rare."""
    from wangban.app import BrokerWatch, Runtime
    from wangban.consumer import ConsumerRunner
    from wangban.outbox import OutboxRelay

    stopped: list[str] = []
    objects = gc.get_objects()
    for runtime in [o for o in objects if isinstance(o, Runtime)]:
        parts = [*runtime._tasks, *(r._task for r in runtime.runners)]
        parts += [runtime.relay._task if runtime.relay else None]
        if any(_alive(t) for t in parts):
            await runtime.stop()
            stopped.append(f"a runtime ({len(runtime.runners)} consumers)")
    for part in [o for o in objects if isinstance(o, ConsumerRunner | OutboxRelay | BrokerWatch)]:
        if _alive(part._task):
            await part.stop()
            stopped.append(type(part).__name__)
    return stopped


@pytest.fixture(autouse=True)
async def nothing_left_running() -> AsyncIterator[None]:
    """A test leaves no relay, consumer or worker running. The tests share one event loop, so
    one left running works on in every later test: a consumer still in the ``notify`` group
    holds partitions another test's notify waits for, a relay publishes another test's
    outbox rows to the wrong broker, the audit stream keeps its lock. Such a test fails here
    (the leftovers stopped), not some unrelated test later on."""
    before = asyncio.all_tasks()
    yield
    left = sorted(
        task.get_name()
        for task in asyncio.all_tasks() - before
        if not task.done() and task.get_name().startswith(_BACKGROUND_TASKS)
    )
    if left:
        stopped = await _stop_what_is_still_running()
        pytest.fail(f"left running after the test: {left} (stopped now: {stopped})")


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    base = tmp_path_factory.mktemp("infra")
    postgres: EmbeddedPostgres | None = None
    kafka: EmbeddedKafka | None = None
    database_url = os.environ.get("WANGBAN_TEST_DATABASE_URL")
    kafka_bootstrap = os.environ.get("WANGBAN_TEST_KAFKA_BOOTSTRAP")
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 and (
        database_url or kafka_bootstrap
    ):
        # Parallel workers each start their own embedded PostgreSQL and broker; one given
        # database or broker would be shared (the same consumer groups, outboxes and audit
        # lock in every worker), and the tests would disturb each other.
        pytest.exit(
            "WANGBAN_TEST_DATABASE_URL / WANGBAN_TEST_KAFKA_BOOTSTRAP are for a serial run: "
            "run pytest without -n, or unset them to give each worker its own",
            returncode=4,
        )
    try:
        if not database_url:
            postgres = EmbeddedPostgres(base / "postgres")
            database_url = postgres.start()
        if not kafka_bootstrap:
            kafka = EmbeddedKafka(free_port(), log_file=base / "broker.log")
            kafka_bootstrap = kafka.start()
        yield Infrastructure(database_url, kafka_bootstrap, base)
    finally:
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()


@pytest.fixture(scope="session")
def settings(infrastructure: Infrastructure) -> Settings:
    return make_settings(infrastructure)


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The suite's engine, with every service's schema migrated once per run."""
    from wangban.migrations import upgrade_service
    from wangban.services import all_specs

    db = Database.from_settings(settings)
    for spec in all_specs():
        await upgrade_service(db, spec)
    yield db
    await db.dispose()


@pytest.fixture
async def db_session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back at the connection level after the
    test: whatever the code under test flushes or "commits" (savepoints) leaves no trace."""
    async with database.engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection,
            expire_on_commit=False,
            join_transaction_mode="create_savepoint",
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()
