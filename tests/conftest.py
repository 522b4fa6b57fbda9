"""Real infrastructure for the whole suite.

PostgreSQL: ``WANGBAN_TEST_DATABASE_URL`` if set, else an embedded pgserver started once per run.
Kafka: ``WANGBAN_TEST_KAFKA_BOOTSTRAP`` if set, else the embedded Tansu broker, once per run.
Nothing is skipped for lack of either: the embedded ones are always available.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from wangban.db import Database
from wangban.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from wangban.settings import Environment, Settings


@dataclass(frozen=True)
class Infrastructure:
    database_url: str
    kafka_bootstrap: str
    data_dir: Path


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


def make_settings(infra: Infrastructure, **overrides: object) -> Settings:
    """Test settings: real URLs, short timeouts so failure paths run in seconds."""
    values: dict[str, object] = {
        "env": Environment.TEST,
        "data_dir": infra.data_dir,
        "database_url": infra.database_url,
        "kafka_bootstrap": infra.kafka_bootstrap,
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "kafka_request_timeout_ms": 3000,
        "outbox_poll_interval_s": 1.0,
        "consumer_max_attempts": 3,
        "consumer_retry_backoff_ms": 20,
        "consumer_retry_backoff_max_ms": 200,
        "log_json": True,
        # A call to another service while holding a transaction fails the test (wangban.db).
        "transaction_guard": "raise",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


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
