"""The relay's direct path and recovery, and consumers handling a partition's batch at once, on
the real database and broker (issue "秒批 at a budget", the kit).

Statements are counted with SQLAlchemy's engine events, as ``tests/work_budget.py`` does: a claim
is the statement with ``SKIP LOCKED``, a mark the ``UPDATE`` of the outbox, an inbox insert the
``INSERT INTO <schema>.inbox``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import event as sa_event
from sqlalchemy import text

from tests.infrastructure import Infrastructure, make_settings
from tests.kit.support import Kit, eventually, make_kit, topic_reader
from wangban.db import Database
from wangban.events import Envelope
from wangban.kafka import make_producer
from wangban.observability import Metrics
from wangban.outbox import Outbox, OutboxRelay
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`


@contextmanager
def statements_of(database: Database) -> Iterator[list[str]]:
    """Every statement ``database``'s engine sends inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = database.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)


def claims(statements: list[str]) -> list[str]:
    return [s for s in statements if "SKIP LOCKED" in s]


def marks(kit: Kit, statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith(f"UPDATE {kit.schema}.outbox")]


def inbox_inserts(kit: Kit, statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith(f"INSERT INTO {kit.schema}.inbox")]


def published(kit: Kit) -> float:
    value = kit.metrics.registry.get_sample_value("wangban_outbox_published_total")
    return value or 0.0


def consumed(kit: Kit, group: str, outcome: str) -> float:
    value = kit.metrics.registry.get_sample_value(
        "wangban_events_consumed_total",
        {"consumer": group, "type": kit.event.event_type, "outcome": outcome},
    )
    return value or 0.0


@asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[OutboxRelay]:
    relay.start()
    try:
        await asyncio.wait_for(relay.started.wait(), timeout=30)
        yield relay
    finally:
        await relay.stop()


async def test_a_committed_row_is_sent_at_once_without_a_claim_and_marked_later(
    infrastructure: Infrastructure, database: Database
) -> None:
    # No poll and no recovery within the test: only the direct path can send the row.
    settings = make_settings(
        infrastructure,
        outbox_poll_interval_s=60.0,
        outbox_recovery_grace_s=60.0,
        outbox_mark_interval_s=1.0,
    )
    kit = make_kit("direct")
    await kit.create(database)
    runner = kit.runner(settings, database, kit.consumer("direct"))
    runner.start()
    try:
        async with running(kit.relay(settings, database)):
            with statements_of(database) as statements:
                async with database.sessionmaker() as session, session.begin():
                    await kit.record(session, "at once")
                await eventually(lambda: _sent(kit, 1), timeout_s=10, interval_s=0.01)
                # Acknowledged by the broker, not marked yet: no claim, no mark so far.
                assert await kit.unpublished(database) == 1
                assert claims(statements) == []
                assert marks(kit, statements) == []
                await eventually(lambda: _unpublished(kit, database, 0), timeout_s=10)
                assert len(marks(kit, statements)) == 1
                assert claims(statements) == []
                # The insert is still one statement per event, with no pg_notify: the relay
                # here is handed the row at commit.
                inserts = [
                    s for s in statements if s.startswith(f"INSERT INTO {kit.schema}.outbox")
                ]
                assert len(inserts) == 1
                assert not any("pg_notify" in s for s in statements)
        await eventually(lambda: _has(kit, database, "direct", "at once"))
    finally:
        await runner.stop()


async def test_a_row_written_by_a_statement_of_the_callers_own_is_sent_when_committed(
    infrastructure: Infrastructure, database: Database
) -> None:
    """A service that writes its outbox row with a statement of its own (with the change it
    reports, in autocommit) returns what :meth:`Outbox.returning` names and hands the row over
    with :meth:`Outbox.committed`: sent directly, no claim. ``wake()`` after such a write, the
    older way, still sends it, by a claim."""
    settings = make_settings(
        infrastructure, outbox_poll_interval_s=60.0, outbox_recovery_grace_s=60.0
    )
    kit = make_kit("ownstatement")
    await kit.create(database)
    outbox = kit.tables.outbox
    autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def write_own(note: str) -> tuple[Envelope, Any]:
        event = kit.event(entry_id=str(uuid.uuid4()), note=note)
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source="/wangban/test/own",
            type=event.event_type,
            subject=event.entry_id,
            time="2026-11-23T08:00:00Z",  # type: ignore[arg-type]
            data=event.model_dump(mode="json"),
        )
        async with autocommit.connect() as conn:
            returned = (
                await conn.execute(
                    outbox.insert()
                    .values(
                        event_id=envelope.id,
                        topic=event.topic,
                        key=event.entry_id,
                        event_type=envelope.type,
                        envelope=envelope.model_dump(mode="json", exclude_none=True),
                    )
                    .returning(*kit.outbox.returning(event.entry_id))
                )
            ).one()
        return envelope, returned

    with statements_of(database) as statements:
        async with running(kit.relay(settings, database)):
            envelope, (seq, older) = await write_own("handed over")
            kit.outbox.committed(
                envelope=envelope,
                topic=kit.event.topic,
                key=envelope.data["entry_id"],
                seq=seq,
                older=older,
            )
            await eventually(lambda: _sent(kit, 1), timeout_s=10, interval_s=0.01)
            assert claims(statements) == [claims(statements)[0]]  # the starting round only

            await write_own("woken")
            kit.outbox.wake()
            await eventually(lambda: _sent(kit, 2), timeout_s=10, interval_s=0.01)
            assert len(claims(statements)) == 2


async def test_marks_are_coalesced_and_flushed_when_many_wait_and_on_stop(
    infrastructure: Infrastructure, database: Database
) -> None:
    settings = make_settings(
        infrastructure,
        outbox_poll_interval_s=60.0,
        outbox_recovery_grace_s=60.0,
        outbox_mark_interval_s=60.0,
        outbox_batch_size=3,
    )
    kit = make_kit("marks")
    await kit.create(database)
    with statements_of(database) as statements:
        async with running(kit.relay(settings, database)):
            # Two transactions, two sends, no mark yet (the interval is a minute away and
            # fewer than a batch wait after each send).
            for i in range(2):
                async with database.sessionmaker() as session, session.begin():
                    await kit.record(session, f"one-{i}")
                await eventually(_sent_at_least(kit, i + 1), timeout_s=10, interval_s=0.01)
            assert await kit.unpublished(database) == 2
            assert marks(kit, statements) == []
            # A batch's worth waiting (three more in one transaction, sent together): marked
            # at once, all five in one statement.
            async with database.sessionmaker() as session, session.begin():
                for i in range(3):
                    await kit.record(session, f"three-{i}")
            await eventually(lambda: _unpublished(kit, database, 0), timeout_s=10)
            assert len(marks(kit, statements)) == 1
            # One more, then stop: the stop marks it.
            async with database.sessionmaker() as session, session.begin():
                await kit.record(session, "last")
            await eventually(lambda: _sent(kit, 6), timeout_s=10, interval_s=0.01)
            assert await kit.unpublished(database) == 1
        assert await kit.unpublished(database) == 0
        assert len(marks(kit, statements)) == 2
        assert claims(statements) == [claims(statements)[0]]  # the starting round only


async def test_a_row_from_a_process_without_a_relay_is_claimed_when_its_notification_comes(
    infrastructure: Infrastructure, database: Database
) -> None:
    """Another process (its own engine, no relay) names its row in ``pg_notify``; the relay
    claims exactly that row at once, long before the poll or the grace period would."""
    settings = make_settings(
        infrastructure, outbox_poll_interval_s=60.0, outbox_recovery_grace_s=60.0
    )
    kit = make_kit("notified")
    await kit.create(database)
    other_process = Database(database.url.render_as_string(hide_password=False), pool_size=1)
    elsewhere = Outbox(
        schema=kit.schema,
        source="/wangban/test/elsewhere",
        tables=kit.tables,
        registry=kit.registry,
    )
    runner = kit.runner(settings, database, kit.consumer("notified"))
    runner.start()
    try:
        async with running(kit.relay(settings, database)):
            with statements_of(other_process) as written:
                async with other_process.sessionmaker() as session, session.begin():
                    await elsewhere.publish(
                        session, kit.event(entry_id=str(uuid.uuid4()), note="from a tool")
                    )
            assert any("pg_notify" in s for s in written)
            await eventually(lambda: _has(kit, database, "notified", "from a tool"), timeout_s=10)
            await eventually(lambda: _unpublished(kit, database, 0), timeout_s=10)
    finally:
        await runner.stop()
        await other_process.dispose()


async def test_a_row_its_writer_never_sent_is_recovered_and_a_later_row_of_its_key_waits(
    infrastructure: Infrastructure, database: Database
) -> None:
    """A writer that died between its commit and its send (here: a relay that never runs)
    leaves a row unpublished with no notification. The poll recovers it once the grace period
    is over. Meanwhile a later row of the same key, committed in the live process, must not
    overtake it: the direct path leaves it to recovery, which sends it right after. A row of
    another key goes at once."""
    settings = make_settings(
        infrastructure,
        outbox_poll_interval_s=0.3,
        outbox_recovery_grace_s=2.0,
        outbox_mark_interval_s=0.2,
    )
    kit = make_kit("orphan")
    await kit.create(database)
    dead = OutboxRelay(settings=settings, database=database, outbox=kit.outbox)
    crashed = Outbox(
        schema=kit.schema, source="/wangban/test/crashed", tables=kit.tables, registry=kit.registry
    )
    crashed.attach(dead)  # handed over at commit to a relay that will never send
    reader = topic_reader(settings, kit.event.topic)
    aggregate = "application-1"
    with statements_of(database) as statements:
        async with running(kit.relay(settings, database)):
            async with database.sessionmaker() as session, session.begin():
                await session.execute(kit.ledger.insert().values(entry_id="x", note="orphan"))
                await crashed.publish(session, kit.event(entry_id=aggregate, note="first"))
            assert list(dead._direct)  # the dead writer's relay has it, unsent
            async with database.sessionmaker() as session, session.begin():
                await kit.record(session, "second", aggregate=aggregate)
            async with database.sessionmaker() as session, session.begin():
                await kit.record(session, "elsewhere")
            await eventually(lambda: _sent(kit, 1), timeout_s=10, interval_s=0.01)
            # Only the other key's row has gone; the aggregate's two wait for the first.
            assert (
                await kit.count(database, kit.tables.outbox, key=aggregate, published_at=None) == 2
            )
            await eventually(lambda: _unpublished(kit, database, 0), timeout_s=20)
            assert claims(statements)  # recovery sent them
    await reader.start()
    try:
        seen = await _read(reader, 3)
    finally:
        await reader.stop()
    by_key: dict[str, list[str]] = {}
    for key, note in seen:
        by_key.setdefault(key, []).append(note)
    assert by_key[aggregate] == ["first", "second"]  # in commit order, each once
    assert [note for _, note in seen].count("elsewhere") == 1


async def test_two_processes_writing_one_key_keep_its_order_without_waiting_for_the_interval(
    infrastructure: Infrastructure, database: Database
) -> None:
    """Two processes, each with its relay, write one aggregate moments apart. The second sees
    the first's row unpublished (sent, not marked: the mark interval is a minute) and cannot
    know it was sent, so it holds its own row back and asks the relays to mark now; the first
    marks at once and the second's row follows within moments, after the first's."""
    settings = make_settings(
        infrastructure,
        outbox_poll_interval_s=60.0,
        outbox_recovery_grace_s=60.0,
        outbox_mark_interval_s=60.0,
    )
    kit = make_kit("twowriters")
    await kit.create(database)
    other_process = Database(database.url.render_as_string(hide_password=False), pool_size=2)
    second = Outbox(
        schema=kit.schema, source="/wangban/test/second", tables=kit.tables, registry=kit.registry
    )
    second_metrics = Metrics("test-second")
    second_relay = OutboxRelay(
        settings=settings,
        database=other_process,
        outbox=second,
        metrics=second_metrics,
        service=kit.schema,
    )
    reader = topic_reader(settings, kit.event.topic)
    aggregate = "application-3"
    try:
        async with running(kit.relay(settings, database)), running(second_relay):
            async with database.sessionmaker() as session, session.begin():
                await kit.record(session, "first", aggregate=aggregate)
            await eventually(lambda: _sent(kit, 1), timeout_s=10, interval_s=0.01)
            assert await kit.unpublished(database) == 1  # sent, not marked
            async with other_process.sessionmaker() as session, session.begin():
                await session.execute(kit.ledger.insert().values(entry_id="y", note="second"))
                await second.publish(session, kit.event(entry_id=aggregate, note="second"))
            await eventually(lambda: _unpublished(kit, database, 0), timeout_s=5)
        await reader.start()
        seen = await _read(reader, 2)
    finally:
        await reader.stop()
        await other_process.dispose()
    assert seen == [(aggregate, "first"), (aggregate, "second")]


async def test_a_partitions_batch_is_one_transaction_with_one_inbox_insert(
    settings: Settings, database: Database
) -> None:
    """Records already waiting on a partition come in one poll and are applied in one
    transaction that inserts them all into the inbox in one statement, in the partition's
    order. An exact duplicate in the batch is applied once."""
    kit = make_kit("batch")
    await kit.create(database)
    aggregate = "application-7"
    notes = [f"event-{i}" for i in range(6)]
    async with database.sessionmaker() as session, session.begin():
        envelopes = [await kit.record(session, note, aggregate=aggregate) for note in notes]
    await _publish_everything(kit, settings, database)
    producer = make_producer(settings, client_id="test-batch-duplicate")
    await producer.start()
    try:  # the second event once more, as a producer retry after a lost ack would send it
        await producer.send_and_wait(
            kit.event.topic, envelopes[1].to_bytes(), key=aggregate.encode()
        )
    finally:
        await producer.stop()

    group = f"batch-{uuid.uuid4().hex[:6]}"
    runner = kit.runner(settings, database, kit.consumer(group))
    with statements_of(database) as statements:
        runner.start()
        try:
            await eventually(lambda: _consumed(kit, group, len(notes) + 1))
        finally:
            await runner.stop()
    assert await kit.effect_notes(database, group) == notes
    assert kit.calls == notes  # each handler once, in the partition's order
    assert len(inbox_inserts(kit, statements)) == 1
    assert consumed(kit, group, "handled") == len(notes)
    assert consumed(kit, group, "duplicate") == 1


async def test_a_batch_runs_its_prepare_steps_first_and_cuts_where_one_must_see_its_key(
    settings: Settings, database: Database
) -> None:
    """Prepare steps (the calls to other services) run before the batch's transaction, outside
    it: with a pool of one connection they can still read. A prepared event whose key is
    already in the batch starts a new one, so its prepare step sees what the earlier event of
    its key did (as approval's 秒批 lookups must see the case its submission opened)."""
    kit = make_kit("prepared")
    await kit.create(database)
    keys = _keys_on_one_partition(4, partitions=kit.event.topic_spec.partitions)
    notes = [f"{key}#0" for key in keys] + [f"{keys[0]}#1"]
    async with database.sessionmaker() as session, session.begin():
        for note in notes:
            await kit.record(session, note, aggregate=note.split("#")[0])
    await _publish_everything(kit, settings, database)

    one_connection = Database(
        database.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0
    )

    async def ask_department(db: Database, *, event: Any, envelope: Envelope) -> str:
        key = event.note.split("#")[0]
        async with db.read_sessionmaker() as reads:
            before = (
                await reads.execute(
                    text(f"SELECT count(*) FROM {kit.schema}.effects WHERE note LIKE :key"),
                    {"key": f"checked {key}#%"},
                )
            ).scalar_one()
        return f"checked {event.note} after {before}"

    group = f"prepared-{uuid.uuid4().hex[:6]}"
    runner = kit.runner(settings, one_connection, kit.consumer(group, prepare=ask_department))
    with statements_of(one_connection) as statements:
        runner.start()
        try:
            await eventually(lambda: _count_effects(kit, database, group, len(notes)))
        finally:
            await runner.stop()
            await one_connection.dispose()
    assert await kit.effect_notes(database, group) == [
        *[f"checked {key}#0 after 0" for key in keys],
        f"checked {keys[0]}#1 after 1",
    ]
    assert kit.calls == notes
    assert len(inbox_inserts(kit, statements)) == 2  # the four together, then the fifth


async def test_a_failing_event_makes_its_batch_fall_back_and_the_others_apply_once(
    settings: Settings, database: Database
) -> None:
    kit = make_kit("fallback")
    await kit.create(database)
    aggregate = "application-9"
    notes = [f"event-{i}" for i in range(5)]
    async with database.sessionmaker() as session, session.begin():
        for note in notes:
            await kit.record(session, note, aggregate=aggregate)
    await _publish_everything(kit, settings, database)

    async def third_is_broken(note: str) -> None:
        if note == "event-2":
            raise ValueError("rule set references a field the form does not have")

    group = f"fallback-{uuid.uuid4().hex[:6]}"
    runner = kit.runner(settings, database, kit.consumer(group, behaviour=third_is_broken))
    runner.start()
    try:
        await eventually(lambda: _count_effects(kit, database, group, 4))
        await eventually(lambda: _dead(kit, database, 1))
        await asyncio.sleep(0.5)  # nothing more may come
    finally:
        await runner.stop()
    # The batch went as far as the broken event, was rolled back, and its events were handled
    # one at a time: the broken one retried and dead-lettered alone, the others applied once,
    # in order.
    assert kit.calls[:3] == notes[:3]
    assert kit.calls[3:] == [
        "event-0",
        "event-1",
        *["event-2"] * settings.consumer_max_attempts,
        "event-3",
        "event-4",
    ]
    assert await kit.effect_notes(database, group) == ["event-0", "event-1", "event-3", "event-4"]
    assert await kit.count(database, kit.tables.inbox) == 4


# --- helpers ---------------------------------------------------------------------------------


def _keys_on_one_partition(count: int, *, partitions: int) -> list[str]:
    """Distinct keys the producer's default partitioner puts on one partition."""
    from aiokafka.partitioner import murmur2

    def partition(key: str) -> int:
        return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions

    candidates = (f"application-{n}" for n in range(1000))
    first = next(candidates)
    return [first, *[k for k in candidates if partition(k) == partition(first)][: count - 1]]


async def _publish_everything(kit: Kit, settings: Settings, database: Database) -> None:
    """Put the kit's unpublished rows on the topic before any consumer runs, so a consumer's
    first poll finds them waiting together."""
    relay = kit.relay(settings, database)
    try:
        while await relay.relay_once():
            pass
    finally:
        await relay.stop()


async def _sent(kit: Kit, expected: int) -> bool:
    return published(kit) >= expected


def _sent_at_least(kit: Kit, expected: int) -> Callable[[], Awaitable[bool]]:
    return lambda: _sent(kit, expected)


async def _consumed(kit: Kit, group: str, expected: int) -> bool:
    total = sum(consumed(kit, group, o) for o in ("handled", "duplicate"))
    return total >= expected


async def _unpublished(kit: Kit, database: Database, expected: int) -> bool:
    return await kit.unpublished(database) == expected


async def _has(kit: Kit, database: Database, group: str, note: str) -> bool:
    return note in await kit.effect_notes(database, group)


async def _count_effects(kit: Kit, database: Database, group: str, expected: int) -> bool:
    return len(await kit.effect_notes(database, group)) >= expected


async def _dead(kit: Kit, database: Database, expected: int) -> bool:
    return await kit.count(database, kit.tables.dead_letter) == expected


async def _read(reader: AIOKafkaConsumer, expected: int) -> list[tuple[str, str]]:
    """(key, note) of the first ``expected`` records and of any that follow within a second
    (a row sent twice would show up there)."""
    seen: list[tuple[str, str]] = []

    async def read(until: int | None) -> None:
        while until is None or len(seen) < until:
            for records in (await reader.getmany(timeout_ms=300)).values():
                for record in records:
                    message = json.loads(record.value or b"{}")
                    seen.append((message["data"]["entry_id"], message["data"]["note"]))

    await asyncio.wait_for(read(expected), timeout=30)
    try:
        await asyncio.wait_for(read(None), timeout=1.0)
    except TimeoutError:
        pass
    return seen
