"""Real infrastructure for the whole suite.

PostgreSQL: ``WANGBAN_TEST_DATABASE_URL`` if set, else an embedded pgserver started once per run.
Kafka: ``WANGBAN_TEST_KAFKA_BOOTSTRAP`` if set, else the embedded broker once per run
(``WANGBAN_EMBEDDED_BROKER``: Tansu or librdkafka's mock cluster).
Nothing is skipped for lack of either: the embedded ones are always available.

The producer settings come from the environment like any setting: ``./dev test-idempotent``
runs the kit and reliability tests with ``WANGBAN_KAFKA_IDEMPOTENCE=true`` on the mock cluster
(the production producer: idempotent, acks=all); the report header says which.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.infrastructure import Infrastructure, make_settings
from wangban.db import Database
from wangban.embedded import EmbeddedKafka, EmbeddedPostgres, embedded_broker_kind, free_port
from wangban.settings import Settings


def pytest_report_header(config: pytest.Config) -> str:
    bootstrap = os.environ.get("WANGBAN_TEST_KAFKA_BOOTSTRAP")
    broker = f"external at {bootstrap}" if bootstrap else f"embedded {embedded_broker_kind()}"
    idempotence = "on" if Settings().kafka_idempotence else "off"
    return f"wangban: broker {broker}; producers acks=all, idempotence {idempotence}"


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    base = tmp_path_factory.mktemp("infra")
    postgres: EmbeddedPostgres | None = None
    kafka: EmbeddedKafka | None = None
    database_url = os.environ.get("WANGBAN_TEST_DATABASE_URL")
    kafka_bootstrap = os.environ.get("WANGBAN_TEST_KAFKA_BOOTSTRAP")
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
