"""A miniature service for testing the kit on real PostgreSQL and Kafka.

Each call to :func:`make_kit` gets its own schema, topic and event type, so tests that really
commit (the relay only sees committed rows) never see each other's data.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from pydantic import Field
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from wangban.consumer import Consumer, ConsumerRunner
from wangban.db import Database
from wangban.events import DEAD_LETTER_TOPIC, Envelope, Event, EventRegistry
from wangban.observability import Metrics
from wangban.outbox import KitTables, Outbox, OutboxRelay, define_kit_tables
from wangban.settings import Settings


@dataclass
class Kit:
    name: str
    schema: str
    metadata: MetaData
    tables: KitTables
    ledger: Table
    effects: Table
    registry: EventRegistry
    event: Any  # the kit's own event class, made per test
    outbox: Outbox
    metrics: Metrics
    calls: list[str] = field(default_factory=list)

    async def create(self, database: Database) -> None:
        async with database.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            await conn.run_sync(self.metadata.create_all)

    async def record(
        self, session: AsyncSession, note: str, *, aggregate: str | None = None
    ) -> Envelope:
        """A state change and its event, in the caller's transaction. Events of one
        ``aggregate`` share a Kafka key, so they must arrive in order."""
        await session.execute(self.ledger.insert().values(entry_id=str(uuid.uuid4()), note=note))
        key = aggregate or str(uuid.uuid4())
        return await self.outbox.publish(session, self.event(entry_id=key, note=note))

    def consumer(
        self,
        group: str,
        *,
        behaviour: Callable[[str], Awaitable[None]] | None = None,
        prepare: Callable[..., Awaitable[str]] | None = None,
        concerns: Callable[[Any], bool] | None = None,
    ) -> Consumer:
        """A consumer whose effect is one row in ``effects`` per handled event; with
        ``prepare``, the row's note is what ``prepare`` returned for the event."""
        consumer = Consumer(name=group)

        @consumer.on(self.event, prepare=prepare, concerns=concerns)
        async def apply(
            session: AsyncSession, *, event: Any, envelope: Envelope, prepared: str | None = None
        ) -> None:
            self.calls.append(event.note)
            if behaviour is not None:
                await behaviour(event.note)
            await session.execute(
                self.effects.insert().values(
                    consumer=group, event_id=envelope.id, note=prepared or event.note
                )
            )

        return consumer

    def relay(self, settings: Settings, database: Database) -> OutboxRelay:
        return OutboxRelay(
            settings=settings, database=database, outbox=self.outbox, metrics=self.metrics
        )

    def runner(self, settings: Settings, database: Database, consumer: Consumer) -> ConsumerRunner:
        return ConsumerRunner(
            settings=settings,
            database=database,
            outbox=self.outbox,
            consumer=consumer,
            metrics=self.metrics,
        )

    async def count(self, database: Database, table: Table, **where: Any) -> int:
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with database.sessionmaker() as session:
            return int((await session.execute(query)).scalar_one())

    async def unpublished(self, database: Database) -> int:
        outbox = self.tables.outbox
        return await self.count(database, outbox, published_at=None)

    async def effect_notes(self, database: Database, group: str) -> list[str]:
        async with database.sessionmaker() as session:
            rows = await session.execute(
                select(self.effects.c.note)
                .where(self.effects.c.consumer == group)
                .order_by(self.effects.c.id)
            )
            return [row.note for row in rows]


def make_kit(name: str) -> Kit:
    suffix = uuid.uuid4().hex[:8]
    schema = f"kt_{name}_{suffix}"
    metadata = MetaData(schema=schema)
    tables = define_kit_tables(metadata)
    ledger = Table(
        "ledger",
        metadata,
        Column("entry_id", String(36), primary_key=True),
        Column("note", String(200), nullable=False),
    )
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("consumer", String(200), nullable=False),
        # No unique constraint on purpose: only the inbox may prevent a second effect.
        Column("event_id", String(64), nullable=False),
        Column("note", String(200), nullable=False),
    )
    registry = EventRegistry()
    registry.topics[DEAD_LETTER_TOPIC.name] = DEAD_LETTER_TOPIC
    topic = registry.topic(
        f"wangban.test.{name}.{suffix}",
        partitions=3,
        description="test topic",
        key_description="ledger entry id",
    )

    @registry.event(
        type=f"cn.wangban.test.{name}_{suffix}.recorded.v1", topic=topic, key="entry_id"
    )
    class LedgerEntryRecorded(Event):
        """A ledger entry was recorded (test event)."""

        entry_id: str
        note: str = Field(max_length=200)

    outbox = Outbox(schema=schema, source=f"/wangban/test/{name}", tables=tables, registry=registry)
    return Kit(
        name=name,
        schema=schema,
        metadata=metadata,
        tables=tables,
        ledger=ledger,
        effects=effects,
        registry=registry,
        event=LedgerEntryRecorded,
        outbox=outbox,
        metrics=Metrics(f"test-{name}"),
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, interval_s: float = 0.05
) -> None:
    """Wait until ``check()`` is true; fail with the timeout otherwise (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


def topic_reader(settings: Settings, topic: str) -> AIOKafkaConsumer:
    """A plain Kafka reader of a whole topic, as a partner department would run one."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=300,
        fetch_max_wait_ms=10,
    )
