"""Idempotent Kafka consumers: inbox de-duplication, bounded retries, dead letters.

Each event is handled in one database transaction together with an insert into the service's
``inbox`` keyed by (consumer, event id): a redelivered event finds its inbox row and has no
second effect. Offsets are committed only after the database commit, so a crash between the two
means a redelivery, which the inbox absorbs.

When a poll brings several records of one partition, they are handled in one transaction: the
handlers' prepare steps first (outside it, in order), then one multi-row inbox insert and each
new event's handler, in the partition's order. A batch is all or nothing: if any of it fails
(a handler, a prepare step, a poison record, the database), it is rolled back and its records
are handled one at a time as below, so a failing event is retried and dead-lettered alone and
the others are applied once. A handler that keeps failing is retried with
exponential backoff, then recorded in ``dead_letter`` and announced on the dead-letter topic —
both through the same transaction. Retrying holds back its partition (which keeps
per-aggregate order) and, since one poll is finished before the next, the consumer's other
partitions too, for at most the configured attempts × backoff. A failure that means a
dependency is unreachable (the database, a service called over HTTP) is not the event's fault:
it uses up no attempt, and the event is retried, with a backoff capped at a few seconds, until
the dependency is back — an outage never turns events into dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert

from wangban import tracing
from wangban.db import Database
from wangban.errors import is_unavailability
from wangban.events import Envelope, Event, EventDeadLettered, TopicSpec, uuid7
from wangban.kafka import cancelled_from_outside, ensure_topics, make_consumer, stop_quietly
from wangban.observability import Metrics, bound_context
from wangban.outbox import Outbox
from wangban.settings import Settings

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
Handler = Callable[..., Awaitable[None]]
"""``async def handle(session, *, event: SomeEvent, envelope: Envelope) -> None``; flushes only."""
Preparer = Callable[..., Awaitable[Any]]
"""``async def prepare(database, *, event: SomeEvent, envelope: Envelope) -> Any``: the part of
handling an event that waits for another service, run *before* the handler's transaction so that
no transaction (no pooled connection, no row lock) is held across the call. Its result reaches
the handler as ``prepared=``. It reads, if it must, in its own short autocommit session, and
writes nothing: it runs again on every attempt, and for a redelivered event too, so it should
notice from what it reads that there is nothing left to do and return ``None``."""


@dataclass
class Consumer:
    """A named consumer group and its handlers, one per event type.

    ``name`` is the Kafka group id and the inbox's consumer column: renaming it replays history.
    """

    name: str
    handlers: dict[str, tuple[type[Event], Handler]] = field(default_factory=dict)
    preparers: dict[str, Preparer] = field(default_factory=dict)
    concerns: dict[str, Callable[[Any], bool]] = field(default_factory=dict)

    def on(
        self,
        model: type[E],
        *,
        prepare: Preparer | None = None,
        concerns: Callable[[E], bool] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the handler of ``model``. ``concerns(event)`` false: the event is none of
        this consumer's business (it is read, then passed over as a type without a handler is:
        no transaction, no inbox row). It must decide from the event alone, the same way every
        time the event is read."""

        def register(handler: Handler) -> Handler:
            if model.event_type in self.handlers:
                raise ValueError(f"{self.name} already handles {model.event_type}")
            self.handlers[model.event_type] = (model, handler)
            if prepare is not None:
                self.preparers[model.event_type] = prepare
            if concerns is not None:
                self.concerns[model.event_type] = concerns
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        return sorted({model.topic for model, _ in self.handlers.values()})

    @property
    def topic_specs(self) -> list[TopicSpec]:
        return sorted({model.topic_spec for model, _ in self.handlers.values()}, key=str)


class _Assignments(ConsumerRebalanceListener):
    """Tells the runner what the group gave it, even when that is nothing."""

    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._runner._given = set(assigned)


class OffsetCommitStuck(KafkaError):
    """The broker does not accept our offset commits; reconnecting and rejoining fixes it."""


@dataclass(frozen=True)
class _Decoded:
    envelope: Envelope
    event: Event | None
    handler: Handler
    id: str
    """The event id as the inbox spells it (canonical UUID)."""


class PoisonEvent(Exception):
    """The message can never be handled (not an envelope, or data not matching its type)."""


class ConsumerRunner:
    """Runs one :class:`Consumer` against Kafka with the service's database and outbox."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        outbox: Outbox,
        consumer: Consumer,
        metrics: Metrics | None = None,
        service: str = "",
    ):
        self.settings = settings
        self.service = service or outbox.schema
        """Whose tracer spans the handling of each event (wangban.tracing)."""
        self.database = database
        self.outbox = outbox
        self.consumer = consumer
        self.metrics = metrics
        self.inbox = outbox.tables.inbox
        self.dead_letter = outbox.tables.dead_letter
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._kafka: AIOKafkaConsumer | None = None
        self.assigned = asyncio.Event()
        """Set once the group has partitions: tests and ``wangban up`` wait on it."""
        self.caught_up = asyncio.Event()
        """Set once this member has handled everything that was on its partitions when the
        group first gave it them (``/readyz``): a service is not ready while it has not yet
        read what was published before it started (intake answering 404 for an item the
        catalogue published a second ago). Never cleared: later lag is the lag metric's
        business, not a reason to take the service out of rotation."""
        self._catch_up_to: dict[TopicPartition, int] | None = None
        self._given: set[TopicPartition] | None = None
        """What the group last gave this member (possibly nothing: more members than
        partitions); ``None`` until the first assignment."""
        self.lag: dict[TopicPartition, int] = {}
        """Records not yet handled per partition of this member, as of its last poll (what the
        lag metric shows): the ops status reads it, asking the broker nothing more."""

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"consumer-{self.consumer.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=10)
        await self._close()

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                await self._open()
                backoff = 0.2
                await self._poll_forever()
            except asyncio.CancelledError:
                if cancelled_from_outside():
                    raise
                await self._reconnect_after("a client future was cancelled", backoff)
                backoff = min(backoff * 2, 5.0)
            except (KafkaError, OSError, TimeoutError) as exc:
                await self._reconnect_after(repr(exc), backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                # Handler errors never get here (process() contains them); this is a bug or
                # the database: keep consuming after a pause rather than die silently.
                log.exception("consumer failed; restarting it")
                await self._reconnect_after("unexpected error", backoff)
                backoff = min(backoff * 2, 5.0)

    async def _reconnect_after(self, error: str, backoff: float) -> None:
        log.warning(
            "consumer lost the broker; reconnecting",
            extra={"fields": {"consumer": self.consumer.name, "error": error}},
        )
        await self._close()
        await asyncio.sleep(backoff)

    async def _open(self) -> None:
        if self._kafka is not None:
            return
        await asyncio.wait_for(
            ensure_topics(self.settings, self.consumer.topic_specs),
            self.settings.kafka_request_timeout_ms / 1000,
        )
        kafka = make_consumer(self.settings, *self.consumer.topics, group_id=self.consumer.name)
        # The same subscription, with a listener: an empty assignment (an idle member) is an
        # assignment too, and it is ready at once.
        kafka.subscribe(self.consumer.topics, listener=_Assignments(self))
        try:
            await asyncio.wait_for(kafka.start(), self.settings.kafka_request_timeout_ms / 1000)
        except BaseException:
            await stop_quietly(kafka)
            raise
        self._kafka = kafka

    async def _close(self) -> None:
        kafka, self._kafka = self._kafka, None
        self.assigned.clear()
        if kafka is not None:
            await stop_quietly(kafka)

    async def _poll_forever(self) -> None:
        kafka = self._kafka
        assert kafka is not None
        while not self._stopping.is_set():
            batches = await kafka.getmany(timeout_ms=500)
            if kafka.assignment():
                self.assigned.set()
                await self._rewind_forgotten_partitions(kafka)
            if batches:
                # Partitions are independent streams (order matters only within one, i.e. per
                # aggregate), so they are handled concurrently; records of one partition stay
                # strictly in order.
                await asyncio.gather(*(self._process_in_order(r) for r in batches.values()))
                # The database already holds the effects; a lost commit only means a
                # redelivery the inbox absorbs. One commit for the whole poll. aiokafka retries
                # some commit errors forever (a broker that forgot the topic), so bound it and
                # rejoin instead.
                offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
                try:
                    await asyncio.wait_for(
                        kafka.commit(offsets),
                        timeout=self.settings.kafka_request_timeout_ms / 1000,
                    )
                except TimeoutError as exc:
                    raise OffsetCommitStuck("offset commit did not finish") from exc
            await self._note_catch_up(kafka)
            await self._record_lag(kafka)

    async def _note_catch_up(self, kafka: AIOKafkaConsumer) -> None:
        """Readiness: the end offsets of the partitions first given to this member are taken
        once; it has caught up when its positions reach them (what it has handled, since
        records are handled before the next poll)."""
        if self.caught_up.is_set() or self._given is None:
            return
        if self._catch_up_to is None:
            given = sorted(self._given)
            self._catch_up_to = dict(await kafka.end_offsets(given)) if given else {}
        assignment = kafka.assignment()
        for tp, end in self._catch_up_to.items():
            # A partition the group has since moved to another member is that member's to
            # catch up with.
            if tp in assignment and await kafka.position(tp) < end:
                return
        self.caught_up.set()

    async def _process_in_order(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        if len(records) == 1:
            await self.process(records[0])
            return
        for segment in self._segments(records):
            if await self.process_batch(segment):
                continue
            for record in segment:  # one at a time: retries and dead letters per event
                await self.process(record)

    def _segments(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> list[list[ConsumerRecord[bytes, bytes]]]:
        """A partition's records cut where a prepare step must see what the records before it
        did: an event with a prepare step whose key is already in the batch starts a new one.
        (A prepare step reads its aggregate to decide what to ask, e.g. approval's 秒批
        lookups once the case is open; run ahead of its predecessors' handlers it would read
        too early, and its handler would refuse what it was given.)"""
        if not self.consumer.preparers:
            return [records]
        segments: list[list[ConsumerRecord[bytes, bytes]]] = [[]]
        keys: set[bytes | None] = set()
        for record in records:
            if (
                segments[-1]
                and record.key in keys
                and self._event_type(record) in self.consumer.preparers
            ):
                segments.append([])
                keys = set()
            segments[-1].append(record)
            keys.add(record.key)
        return segments

    @staticmethod
    def _event_type(record: ConsumerRecord[bytes, bytes]) -> str | None:
        try:
            return str(json.loads(record.value or b"{}").get("type"))
        except (ValueError, AttributeError):
            return None  # poison: the batch refuses it and it is dead-lettered in its place

    async def _rewind_forgotten_partitions(self, kafka: AIOKafkaConsumer) -> None:
        """A partition whose end is now before our position was emptied under us: the broker
        restarted and forgot its log (the embedded one keeps nothing). New events there start at
        offset 0 again, so read it from the beginning; the inbox drops what we already applied.
        """
        for tp in kafka.assignment():
            highwater = kafka.highwater(tp)
            if highwater is None:
                continue
            position = await kafka.position(tp)
            if position > highwater:
                log.warning(
                    "partition shorter than our position; reading it again from the start",
                    extra={
                        "fields": {
                            "consumer": self.consumer.name,
                            "partition": f"{tp.topic}/{tp.partition}",
                            "position": position,
                            "end": highwater,
                        }
                    },
                )
                await kafka.seek_to_beginning(tp)

    async def _record_lag(self, kafka: AIOKafkaConsumer) -> None:
        # Both from what the last fetch brought (the high-water mark) and our own position: no
        # request to the broker.
        lag: dict[TopicPartition, int] = {}
        for tp in kafka.assignment():
            highwater = kafka.highwater(tp)
            if highwater is None:
                continue  # not fetched yet
            lag[tp] = max(highwater - await kafka.position(tp), 0)
            if self.metrics is not None:
                self.metrics.consumer_lag.labels(
                    self.consumer.name, tp.topic, str(tp.partition)
                ).set(lag[tp])
        self.lag = lag  # partitions the group moved elsewhere are no longer this member's

    # --- one record ----------------------------------------------------------------------
    async def process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Handle one record: effect once, retried with backoff, dead-lettered when hopeless."""
        try:
            envelope, event, handler = self._decode(record)
        except PoisonEvent as exc:
            await self._dead_letter(record, error=str(exc), attempts=1, envelope=None)
            return
        if handler is None:
            self._count(envelope.type, "ignored")
            return
        attempts = 0
        outage_waits = 0
        max_attempts = max(self.settings.consumer_max_attempts, 1)
        while True:
            attempts += 1
            started = time.perf_counter()
            try:
                with self._context(envelope), self._span(envelope):
                    applied = await self._handle_once(envelope, event, handler)
                self._time(envelope.type, time.perf_counter() - started)
                self._count(envelope.type, "handled" if applied else "duplicate")
                return
            except Exception as exc:
                self._time(envelope.type, time.perf_counter() - started)
                if is_unavailability(exc):
                    # The database or a service we call is unreachable: that says nothing
                    # about this event, so it must not use up its attempts and end as a dead
                    # letter after a few seconds of outage. Hold the partition (keeping the
                    # aggregate's order) and try again until the dependency is back; the
                    # consumer lag metric shows the wait.
                    attempts -= 1
                    outage_waits += 1
                    if outage_waits == 1 or outage_waits % 20 == 0:
                        log.warning(
                            "dependency unavailable; event held until it is back",
                            extra={
                                "fields": {
                                    "consumer": self.consumer.name,
                                    "event_id": envelope.id,
                                    "type": envelope.type,
                                    "waits": outage_waits,
                                    "error": repr(exc)[:300],
                                }
                            },
                        )
                    self._count(envelope.type, "waited")
                    await asyncio.sleep(self._outage_backoff_s(outage_waits))
                    continue
                if attempts >= max_attempts:
                    log.error(
                        "event dead-lettered after retries",
                        extra={
                            "fields": {
                                "consumer": self.consumer.name,
                                "event_id": envelope.id,
                                "type": envelope.type,
                                "attempts": attempts,
                                "error": repr(exc),
                            }
                        },
                    )
                    await self._dead_letter(
                        record, error=repr(exc), attempts=attempts, envelope=envelope
                    )
                    return
                self._count(envelope.type, "retried")
                await asyncio.sleep(self._backoff_s(attempts))

    # --- a partition's batch -------------------------------------------------------------
    async def process_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        """Handle a partition's records in one transaction: the prepare steps first (outside
        it, in order), then one multi-row inbox insert and each new event's handler in order.
        False when the batch could not be handled as one (a poison record, a failing prepare
        or handler, a dependency away): nothing of it was applied, and the caller handles the
        records one at a time, with the per-event retries and dead letters."""
        if len(records) < 2:
            return False
        batch: list[_Decoded] = []
        ignored: list[str] = []
        for record in records:
            try:
                envelope, event, handler = self._decode(record)
            except PoisonEvent:
                return False  # dead-lettered in its place, one at a time
            if handler is None:
                ignored.append(envelope.type)
                continue
            try:
                event_id = str(uuid.UUID(envelope.id))  # as the inbox gives it back
            except ValueError:
                return False
            batch.append(_Decoded(envelope=envelope, event=event, handler=handler, id=event_id))
        if len(batch) < 2:
            return False  # nothing to gain over the single path
        started = time.perf_counter()
        try:
            outcomes = await self._handle_batch(batch)
        except Exception as exc:
            log.info(
                "batch not handled as one; handling its events one at a time",
                extra={
                    "fields": {
                        "consumer": self.consumer.name,
                        "events": len(batch),
                        "error": repr(exc)[:300],
                    }
                },
            )
            return False
        for event_type in ignored:
            self._count(event_type, "ignored")
        # One transaction for the batch: each event is given its share of the time.
        share = (time.perf_counter() - started) / len(batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            self._time(item.envelope.type, share)
            self._count(item.envelope.type, outcome)
        return True

    async def _handle_batch(self, batch: list[_Decoded]) -> list[str]:
        prepared: list[dict[str, Any]] = []
        for item in batch:
            prepare = self.consumer.preparers.get(item.envelope.type)
            if prepare is None:
                prepared.append({})
                continue
            with self._context(item.envelope):
                found = await prepare(self.database, event=item.event, envelope=item.envelope)
            prepared.append({"prepared": found})
        outcomes: list[str] = []
        async with self.database.sessionmaker() as session, session.begin():
            # One statement for the whole batch; an event delivered twice in it is inserted
            # (and handled) once.
            claimed = await session.execute(
                insert(self.inbox)
                .values(
                    [
                        {
                            "consumer": self.consumer.name,
                            "event_id": item.id,
                            "event_type": item.envelope.type,
                        }
                        for item in batch
                    ]
                )
                .on_conflict_do_nothing()
                .returning(self.inbox.c.event_id)
            )
            new = {str(event_id) for event_id in claimed.scalars()}
            for item, extra in zip(batch, prepared, strict=True):
                if item.id not in new:
                    outcomes.append("duplicate")  # applied by an earlier delivery
                    continue
                new.discard(item.id)
                with self._context(item.envelope), self._span(item.envelope):
                    await item.handler(session, event=item.event, envelope=item.envelope, **extra)
                outcomes.append("handled")
        return outcomes

    def _span(self, envelope: Envelope) -> contextlib.AbstractContextManager[object]:
        # A span per handling, a child of the span that wrote the event (the envelope's
        # traceparent): what the handler calls and publishes joins the request's trace.
        return tracing.consumer_span(
            self.service,
            event_type=envelope.type,
            event_id=envelope.id,
            consumer=self.consumer.name,
            traceparent=envelope.traceparent,
        )

    @staticmethod
    def _context(envelope: Envelope) -> contextlib.AbstractContextManager[dict[str, str | None]]:
        return bound_context(
            correlation_id=envelope.correlationid or envelope.id,
            causation_id=envelope.id,
            traceparent=envelope.traceparent,
        )

    def _decode(
        self, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[Envelope, Event | None, Handler | None]:
        if record.value is None:
            raise PoisonEvent("empty message")
        try:
            envelope = Envelope.from_bytes(record.value)
        except ValidationError as exc:
            raise PoisonEvent(f"not a CloudEvents envelope: {exc.error_count()} errors") from exc
        entry = self.consumer.handlers.get(envelope.type)
        if entry is None:
            return envelope, None, None
        model, handler = entry
        try:
            # Tolerant: a field a newer producer added (an additive change within the type's
            # version) is ignored, not a reason to dead-letter; what this code needs must be
            # there with the right type.
            event = model.read(envelope.data)
        except ValidationError as exc:
            raise PoisonEvent(f"data does not match {envelope.type}: {exc}") from exc
        concerns = self.consumer.concerns.get(envelope.type)
        if concerns is not None and not concerns(event):
            return envelope, event, None
        return envelope, event, handler

    async def _handle_once(self, envelope: Envelope, event: Event | None, handler: Handler) -> bool:
        extra: dict[str, Any] = {}
        prepare = self.consumer.preparers.get(envelope.type)
        if prepare is not None:
            extra["prepared"] = await prepare(self.database, event=event, envelope=envelope)
        async with self.database.sessionmaker() as session, session.begin():
            claimed = await session.execute(
                insert(self.inbox)
                .values(consumer=self.consumer.name, event_id=envelope.id, event_type=envelope.type)
                .on_conflict_do_nothing()
                .returning(self.inbox.c.event_id)
            )
            if claimed.first() is None:
                return False  # already applied by an earlier delivery
            await handler(session, event=event, envelope=envelope, **extra)
        return True

    def _backoff_s(self, attempts: int) -> float:
        base = self.settings.consumer_retry_backoff_ms / 1000
        cap = self.settings.consumer_retry_backoff_max_ms / 1000
        delay: float = min(cap, base * 2 ** (attempts - 1))
        return delay * random.uniform(0.5, 1.0)  # jitter so retrying consumers do not align

    def _outage_backoff_s(self, waits: int) -> float:
        # From the retry backoff up to a few seconds: a recovered database is noticed within
        # about one cap, and a long outage costs one attempt per cap, not a busy loop.
        base = self.settings.consumer_retry_backoff_ms / 1000
        cap = max(self.settings.consumer_retry_backoff_max_ms / 1000, 2.0)
        delay: float = min(cap, base * 2 ** min(waits - 1, 16))
        return delay * random.uniform(0.5, 1.0)

    async def _dead_letter(
        self,
        record: ConsumerRecord[bytes, bytes],
        *,
        error: str,
        attempts: int,
        envelope: Envelope | None,
    ) -> None:
        raw = (record.value or b"").decode("utf-8", errors="replace")
        key = (record.key or b"").decode("utf-8", errors="replace")
        dead_letter_id = str(uuid7())
        async with self.database.sessionmaker() as session, session.begin():
            await session.execute(
                self.dead_letter.insert().values(
                    id=dead_letter_id,
                    consumer=self.consumer.name,
                    event_id=envelope.id
                    if envelope
                    else f"{record.topic}/{record.partition}/{record.offset}",
                    event_type=envelope.type if envelope else "unknown",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=key,
                    payload=raw,
                    error=error[:4000],
                    attempts=attempts,
                )
            )
            await self.outbox.publish(
                session,
                EventDeadLettered(
                    dead_letter_id=dead_letter_id,
                    consumer=self.consumer.name,
                    key=key,
                    original_topic=record.topic,
                    original_event_id=envelope.id if envelope else "",
                    original_type=envelope.type if envelope else "unknown",
                    attempts=attempts,
                    error=error[:4000],
                    original=envelope.model_dump(mode="json") if envelope else {"raw": raw},
                ),
            )
        if self.metrics is not None:
            self.metrics.dead_letters_total.labels(self.consumer.name).inc()
        self._count(envelope.type if envelope else "unknown", "dead_lettered")

    def _time(self, event_type: str, duration_s: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_handler(
                consumer=self.consumer.name, event_type=event_type, duration_s=duration_s
            )

    def _count(self, event_type: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.events_consumed_total.labels(self.consumer.name, event_type, outcome).inc()


async def wait_until_assigned(runners: list[ConsumerRunner], *, timeout_s: float) -> None:
    """Wait until every runner's group has its partitions (used by ``wangban up`` and tests)."""
    await asyncio.wait_for(asyncio.gather(*(r.assigned.wait() for r in runners)), timeout_s)
