"""Transactional outbox: events are rows written in the same transaction as the state change,
then relayed to Kafka after commit.

Why it is fast: the relay is woken in-process right after the commit (an ``after_commit``
hook) and across processes by ``LISTEN/NOTIFY`` (``pg_notify`` is delivered at commit); the
poll interval is only a safety net. A 秒批 decision therefore never waits for a poll.

Why it is safe: rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several relays can run;
a row is marked published only after the broker acknowledged it (acks=all); a row whose key
has an earlier unpublished row held elsewhere waits, so one aggregate's events stay in order
even with several relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from wangban.db import Database, asyncpg_dsn, checked_schema
from wangban.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    DEAD_LETTER_TOPIC,
    Envelope,
    Event,
    EventRegistry,
    envelope_for,
)
from wangban.events import registry as default_registry
from wangban.kafka import (
    cancelled_from_outside,
    common_config,
    ensure_topics,
    make_producer,
    stop_quietly,
)
from wangban.observability import Metrics
from wangban.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Where each relay keeps its broker epoch (see OutboxRelay._verify_same_broker): a partition of
# a topic the kit always creates.
_EPOCH_PARTITION = TopicPartition(DEAD_LETTER_TOPIC.name, 0)

_WAKE_KEY = "wangban.outbox.wake"


def define_kit_tables(metadata: MetaData) -> KitTables:
    """Add the outbox, inbox and dead-letter tables to a service's metadata (its own schema)."""
    outbox = Table(
        "outbox",
        metadata,
        # seq orders relaying; event ids are unique per event but a replayed dead letter is
        # written again under its original id, so the id is not the key.
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", UUID(as_uuid=False), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("key", String(255), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("envelope", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_key_unpublished", "key", postgresql_where=text("published_at IS NULL")),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", UUID(as_uuid=False), primary_key=True),
        Column("event_type", String(255), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    dead_letter = Table(
        "dead_letter",
        metadata,
        Column("id", UUID(as_uuid=False), primary_key=True),
        Column("consumer", String(200), nullable=False),
        Column("event_id", String(255), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("key", String(255), nullable=False),
        Column("payload", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("replayed_at", DateTime(timezone=True)),
    )
    return KitTables(outbox=outbox, inbox=inbox, dead_letter=dead_letter)


@dataclass(frozen=True)
class KitTables:
    outbox: Table
    inbox: Table
    dead_letter: Table


class Outbox:
    """A service's outbox: where its events are written, and how its relay is woken."""

    def __init__(
        self,
        *,
        schema: str,
        source: str,
        tables: KitTables,
        registry: EventRegistry = default_registry,
    ):
        self.schema = checked_schema(schema)
        self.registry = registry
        self.source = source
        self.tables = tables
        self.channel = f"wangban_outbox_{self.schema}"
        self._wake: asyncio.Event | None = None

    async def publish(
        self, session: AsyncSession, event: Event, *, subject: str | None = None
    ) -> Envelope:
        """Write ``event`` to the outbox in the session's transaction (flush, no commit)."""
        envelope = envelope_for(event, source=self.source, subject=subject)
        await self.write(session, envelope, topic=event.topic, key=event.aggregate_key())
        return envelope

    async def write(
        self, session: AsyncSession, envelope: Envelope, *, topic: str, key: str
    ) -> None:
        """Write a ready envelope (also used to replay a dead letter under its original id)."""
        await session.execute(
            self.tables.outbox.insert().values(
                event_id=envelope.id,
                topic=topic,
                key=key,
                event_type=envelope.type,
                envelope=envelope.model_dump(mode="json", exclude_none=True),
            )
        )
        info = session.sync_session.info
        if _WAKE_KEY not in info:
            if self._wake is None:
                # No relay runs in this process (a tool, an HTTP-only worker): pg_notify, which
                # is delivered at commit and only if the transaction commits, wakes a relay in
                # another process exactly when there is something to send. Where a relay runs
                # here, the after-commit hook wakes it without this statement (one fewer per
                # publishing transaction: ~6 per 秒批 application); any relay may send any row.
                await session.execute(
                    text("SELECT pg_notify(:channel, '')"), {"channel": self.channel}
                )
            info[_WAKE_KEY] = self

    def attach_waker(self, wake: asyncio.Event | None) -> None:
        """The running relay of this process (None: none runs here any more)."""
        self._wake = wake

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()


@event.listens_for(Session, "after_commit")
def _wake_relay_after_commit(session: Session) -> None:
    outbox = session.info.pop(_WAKE_KEY, None)
    if outbox is not None:
        outbox.wake()


@event.listens_for(Session, "after_rollback")
def _forget_wake_after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_KEY, None)


class OutboxRelay:
    """Publishes a service's outbox rows to Kafka, in order per key, at least once."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        outbox: Outbox,
        metrics: Metrics | None = None,
        service: str = "",
    ):
        self.settings = settings
        self.database = database
        self.outbox = outbox
        self.metrics = metrics
        self.service = service or outbox.schema
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._epoch_client: AIOKafkaConsumer | None = None
        self._epoch: int | None = None
        self._backlog_counted_at = float("-inf")
        self._instance = secrets.token_hex(6)
        self._listener: asyncpg.Connection | None = None
        self._topics_ready = False
        self._task: asyncio.Task[None] | None = None
        schema = outbox.schema
        # Claim a batch; keep only rows with no earlier unpublished row of the same key outside
        # the batch (held by another relay, or not yet visible to it): those wait their turn.
        self._claim = text(
            f"""
            WITH claimed AS (
                SELECT seq, key FROM {schema}.outbox
                WHERE published_at IS NULL
                ORDER BY seq
                LIMIT :batch
                FOR UPDATE SKIP LOCKED
            )
            SELECT o.seq, o.topic, o.key, o.envelope
            FROM {schema}.outbox o JOIN claimed c ON c.seq = o.seq
            WHERE NOT EXISTS (
                SELECT 1 FROM {schema}.outbox e
                WHERE e.published_at IS NULL AND e.key = c.key AND e.seq < c.seq
                  AND e.seq NOT IN (SELECT seq FROM claimed)
            )
            ORDER BY o.seq
            """  # noqa: S608 - schema is validated by checked_schema
        )
        self._mark = text(
            f"UPDATE {schema}.outbox SET published_at = now() WHERE seq = ANY(:seqs)"  # noqa: S608
        )
        self._backlog = text(
            f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"  # noqa: S608
        )

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.outbox.attach_waker(self._wake)
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        self.outbox.attach_waker(None)
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
        await self._close_producer()
        await self._close_listener()

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self._ensure_listener()
                sent = await self.relay_once()
                backoff = 0.1
                if sent >= self.settings.outbox_batch_size:
                    continue  # more waiting: don't sleep
            except asyncio.CancelledError:
                if cancelled_from_outside():
                    raise
                await self._recover("a client future was cancelled", backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except (KafkaError, OSError, TimeoutError, RelayError) as exc:
                await self._recover(repr(exc), backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                # A bug or a database error: keep the relay alive, the rows stay in the outbox.
                log.exception("outbox relay failed; retrying")
                await self._recover("unexpected error", backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            await self._sleep(self.settings.outbox_poll_interval_s)

    async def _recover(self, error: str, backoff: float) -> None:
        log.warning(
            "outbox relay cannot publish yet; retrying",
            extra={"fields": {"service": self.service, "error": error}},
        )
        await self._close_producer()
        self._topics_ready = False
        await self._sleep(backoff)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    # --- one round -------------------------------------------------------------------------
    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self.database.sessionmaker() as session:
            async with session.begin():
                rows = (
                    await session.execute(self._claim, {"batch": self.settings.outbox_batch_size})
                ).all()
                if not rows:
                    await self._update_backlog(session)
                    return 0
                producer = await self._ready_producer()
                sent, failure = await self._send(producer, rows)
                if sent:
                    await session.execute(self._mark, {"seqs": sent})
                await self._update_backlog(session)
        if self.metrics is not None and sent:
            self.metrics.outbox_published_total.labels(self.service).inc(len(sent))
        if failure is not None:
            raise RelayError(f"{len(rows) - len(sent)} of {len(rows)} rows not acknowledged") from (
                failure
            )
        return len(sent)

    async def _send(
        self, producer: AIOKafkaProducer, rows: Sequence[Any]
    ) -> tuple[list[int], BaseException | None]:
        # Enqueue all, then await: aiokafka keeps one in-flight batch per partition, so rows of
        # one key (one partition) are delivered in the order they were enqueued.
        futures: list[asyncio.Future[Any]] = []
        failure: BaseException | None = None
        for row in rows:
            try:
                futures.append(
                    await producer.send(
                        row.topic,
                        value=Envelope.model_validate(row.envelope).to_bytes(),
                        key=row.key.encode(),
                        headers=[("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())],
                    )
                )
            except KafkaError as exc:  # e.g. metadata unavailable: the rest waits for next round
                failure = exc
                break
        results = await asyncio.gather(*futures, return_exceptions=True)
        if self.settings.kafka_verify_writes:
            await self._verify_same_broker()
        sent: list[int] = []
        failed_keys: set[str] = set()
        for row, result in zip(rows, results, strict=False):
            if isinstance(result, BaseException):
                failure = failure or result
                failed_keys.add(row.key)
            elif row.key not in failed_keys:
                sent.append(row.seq)
        return sent, failure

    async def _verify_same_broker(self) -> None:
        """Fail the batch if the broker restarted since this relay last prepared it.

        A broker that restarts and forgets everything (the embedded one keeps nothing in memory
        across a restart) acknowledges sends that were in flight across the restart into topics
        it no longer has, and loses them when the topics are created again. The relay therefore
        stamps the broker with an epoch (a committed offset of a group only this relay uses)
        whenever it (re)creates topics, and checks the stamp after every batch: a missing stamp
        means the batch may be lost, so it is sent again; the inbox absorbs the duplicates. With
        Apache Kafka and acks=all this is redundant (WANGBAN_KAFKA_VERIFY_WRITES=false saves the
        round trip).
        """
        client = self._epoch_client
        if client is None or self._epoch is None:
            raise RelayError("broker epoch not stamped yet")
        committed = await self._bounded(client.committed(_EPOCH_PARTITION))
        if committed != self._epoch:
            self._topics_ready = False
            raise RelayError("the broker restarted while the batch was in flight; sending again")

    async def _stamp_epoch(self) -> None:
        if self._epoch_client is None:
            client = AIOKafkaConsumer(
                **common_config(self.settings, client_id=f"{self.service}-relay-epoch"),
                # One group per relay instance: relays of one service must not overwrite each
                # other's stamp (on Apache Kafka, idle groups expire with their offsets).
                group_id=f"wangban.relay-epoch.{self.service}.{self._instance}",
                enable_auto_commit=False,
            )
            try:
                await client.start()
                client.assign([_EPOCH_PARTITION])  # manual assignment: no group join needed
            except BaseException:
                await stop_quietly(client)
                raise
            self._epoch_client = client
        epoch = secrets.randbelow(2**31 - 2) + 1
        await self._epoch_client.commit({_EPOCH_PARTITION: epoch})
        self._epoch = epoch

    async def _update_backlog(self, session: AsyncSession) -> None:
        # A gauge scraped every few seconds: counting the backlog once a second is plenty, and
        # under load, when a round runs after nearly every commit, it saves a query per round.
        if self.metrics is None or time.monotonic() - self._backlog_counted_at < 1.0:
            return
        backlog = (await session.execute(self._backlog)).scalar_one()
        self.metrics.outbox_backlog.labels(self.service).set(backlog)
        self._backlog_counted_at = time.monotonic()

    async def _ready_producer(self) -> AIOKafkaProducer:
        if not self._topics_ready:
            # Created before the first send and again after losing the broker: an embedded
            # broker forgets its topics when it restarts.
            await self._bounded(
                ensure_topics(
                    self.settings, {*self.outbox.registry.topics.values(), DEAD_LETTER_TOPIC}
                )
            )
            if self.settings.kafka_verify_writes:
                await self._bounded(self._stamp_epoch())
            self._topics_ready = True
        if self._producer is None:
            producer = make_producer(self.settings, client_id=f"{self.service}-relay")
            try:
                await self._bounded(producer.start())
            except BaseException:
                await stop_quietly(producer)
                raise
            self._producer = producer
        return self._producer

    async def _bounded(self, operation: Awaitable[T]) -> T:
        """Some aiokafka calls retry forever against a broker that lost its state (commits,
        coordinator lookups); a bounded wait turns that into an error the relay recovers from."""
        return await asyncio.wait_for(operation, self.settings.kafka_request_timeout_ms / 1000)

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        epoch_client, self._epoch_client = self._epoch_client, None
        self._epoch = None
        for client in (producer, epoch_client):
            if client is not None:
                await stop_quietly(client)

    # --- LISTEN/NOTIFY ---------------------------------------------------------------------
    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        try:
            conn = await asyncpg.connect(asyncpg_dsn(self.database.url))
            await conn.add_listener(self.outbox.channel, self._on_notify)
            self._listener = conn
        except (OSError, asyncpg.PostgresError) as exc:
            # The poll still works without it; try again on the next round.
            log.warning("outbox LISTEN unavailable", extra={"fields": {"error": repr(exc)}})

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)


class RelayError(RuntimeError):
    """Some rows of a batch were not acknowledged by the broker; they stay in the outbox."""
