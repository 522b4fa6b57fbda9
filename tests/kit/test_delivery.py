"""Outbox → Kafka → idempotent consumer, on the real database and the real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from tests.infrastructure import Infrastructure, make_settings
from tests.kit.support import Kit, eventually, make_kit, topic_reader
from wangban.consumer import wait_until_assigned
from wangban.db import Database
from wangban.deadletter import DeadLetterError, list_dead_letters, replay_dead_letter
from wangban.embedded import EmbeddedKafka, free_port
from wangban.events import DEAD_LETTER_TOPIC, Envelope
from wangban.kafka import make_producer
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`


@pytest.fixture
async def kit(database: Database, request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    kit = make_kit(request.node.name.removeprefix("test_")[:20].replace("[", "_").strip("]"))
    await kit.create(database)
    yield kit


async def test_committed_event_reaches_consumer_once_and_rollback_publishes_nothing(
    kit: Kit, settings: Settings, database: Database
) -> None:
    relay = kit.relay(settings, database)
    runner = kit.runner(settings, database, kit.consumer("audit"))
    relay.start()
    runner.start()
    try:
        async with database.sessionmaker() as session:
            async with session.begin():
                committed = await kit.record(session, "committed")
            async with session.begin():
                await kit.record(session, "rolled-back")
                await session.rollback()
        await eventually(lambda: _has(kit, database, "audit", "committed"))
        # Let the relay and consumer run idle for a while: nothing else may arrive.
        await asyncio.sleep(1.0)
        assert await kit.effect_notes(database, "audit") == ["committed"]
        assert kit.calls == ["committed"]
        assert await kit.count(database, kit.ledger) == 1
        assert await kit.count(database, kit.tables.outbox) == 1
        assert await kit.unpublished(database) == 0
        assert await kit.count(database, kit.tables.inbox, event_id=committed.id) == 1
    finally:
        await runner.stop()
        await relay.stop()


async def test_handler_failing_once_is_retried_and_applied_once(
    kit: Kit, settings: Settings, database: Database
) -> None:
    failures = {"left": 1}

    async def fail_first_time(note: str) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("department system briefly unavailable")

    relay = kit.relay(settings, database)
    runner = kit.runner(settings, database, kit.consumer("flaky", behaviour=fail_first_time))
    relay.start()
    runner.start()
    try:
        async with database.sessionmaker() as session, session.begin():
            await kit.record(session, "retry-me")
        await eventually(lambda: _has(kit, database, "flaky", "retry-me"))
        await asyncio.sleep(0.5)
        assert kit.calls == ["retry-me", "retry-me"]  # failed once, then succeeded
        assert await kit.effect_notes(database, "flaky") == ["retry-me"]
        assert await kit.count(database, kit.tables.dead_letter) == 0
    finally:
        await runner.stop()
        await relay.stop()


async def test_prepare_runs_before_the_transaction_and_is_retried_with_the_handler(
    kit: Kit, settings: Settings, database: Database
) -> None:
    """The part of handling that waits for another service (秒批's lookups) runs before the
    handler's transaction, so no connection is held across the call: with a pool of one
    connection, prepare can still read. It fails and is retried like the handler, and what it
    found reaches the handler."""
    one_connection = Database(
        database.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0
    )
    attempts: list[int] = []

    async def ask_department(db: Database, *, event: Any, envelope: Envelope) -> str:
        async with db.read_sessionmaker() as reads:
            attempts.append(int((await reads.execute(text("SELECT 1"))).scalar_one()))
        if len(attempts) == 1:
            raise RuntimeError("department system briefly unavailable")
        return f"checked {event.note}"

    relay = kit.relay(settings, database)
    runner = kit.runner(settings, one_connection, kit.consumer("prepared", prepare=ask_department))
    relay.start()
    runner.start()
    try:
        async with database.sessionmaker() as session, session.begin():
            await kit.record(session, "an application")
        await eventually(lambda: _has(kit, database, "prepared", "checked an application"))
        assert attempts == [1, 1]  # failed once, then prepared again and applied
        assert kit.calls == ["an application"]  # the handler ran once, after a good prepare
        assert await kit.effect_notes(database, "prepared") == ["checked an application"]
    finally:
        await runner.stop()
        await relay.stop()
        await one_connection.dispose()


async def test_same_event_delivered_twice_has_its_effect_once(
    kit: Kit, settings: Settings, database: Database
) -> None:
    runner = kit.runner(settings, database, kit.consumer("dedupe"))
    runner.start()
    producer = make_producer(settings, client_id="test-duplicate")
    await producer.start()
    try:
        await wait_until_assigned([runner], timeout_s=30)
        envelope = Envelope(
            id=str(uuid.uuid4()),
            source="/wangban/test",
            type=kit.event.event_type,
            subject="entry-1",
            time="2026-11-23T08:00:00Z",  # type: ignore[arg-type]
            data={"entry_id": "entry-1", "note": "twice"},
        )
        for _ in range(2):  # the same event, as a producer retry after a lost ack would send it
            await producer.send_and_wait(kit.event.topic, envelope.to_bytes(), key=b"entry-1")
        async with database.sessionmaker() as session, session.begin():
            await kit.record(session, "after")  # a marker behind the duplicate, same partition
        relay = kit.relay(settings, database)
        relay.start()
        try:
            await eventually(lambda: _has(kit, database, "dedupe", "after"))
        finally:
            await relay.stop()
        assert (await kit.effect_notes(database, "dedupe")).count("twice") == 1
        assert kit.calls.count("twice") == 1
    finally:
        await producer.stop()
        await runner.stop()


async def test_events_wait_in_outbox_during_broker_outage_and_all_arrive_after(
    database: Database, infrastructure: Infrastructure
) -> None:
    # A broker of its own: this test stops and restarts it.
    broker = EmbeddedKafka(free_port(), log_file=infrastructure.data_dir / "outage-broker.log")
    settings = make_settings(infrastructure, kafka_bootstrap=broker.start())
    kit = make_kit("outage")
    await kit.create(database)
    relay = kit.relay(settings, database)
    runner = kit.runner(settings, database, kit.consumer("outage"))
    relay.start()
    runner.start()
    try:
        async with database.sessionmaker() as session, session.begin():
            await kit.record(session, "before")
        await eventually(lambda: _has(kit, database, "outage", "before"))

        # This broker comes back empty (a real one keeps its log): a consumer that kept its
        # position across would wait past offsets the new log reuses. The consumer's own
        # survival of an outage is tests/reliability/test_broker_outage.py's; here a new runner
        # reads the new log from its start, so what is checked is the outbox alone.
        await runner.stop()
        broker.stop()
        notes = [f"during-{i}" for i in range(20)]
        for note in notes:
            async with database.sessionmaker() as session, session.begin():
                await kit.record(session, note)
        await asyncio.sleep(1.5)
        assert await kit.unpublished(database) == 20  # committed, waiting, not lost

        broker.start()  # same port, empty memory: no topics, no offsets
        runner = kit.runner(settings, database, kit.consumer("outage"))
        runner.start()
        try:
            await eventually(
                lambda: _has_all(kit, database, "outage", notes), timeout_s=90, interval_s=0.2
            )
        except AssertionError:
            missing = set(notes) - set(await kit.effect_notes(database, "outage"))
            unpublished = await kit.unpublished(database)
            raise AssertionError(
                f"not delivered: {sorted(missing)}; unpublished: {unpublished}"
            ) from None
        # A batch in flight across the restart may have arrived and still be re-sent (the
        # relay cannot tell it arrived); the inbox absorbs the copy.
        await eventually(lambda: _none_unpublished(kit, database))
        effects = await kit.effect_notes(database, "outage")
        assert sorted(effects) == sorted(["before", *notes])  # each exactly once
    finally:
        await runner.stop()
        await relay.stop()
        broker.stop()


async def test_poison_event_is_dead_lettered_and_replayed(
    kit: Kit, settings: Settings, database: Database
) -> None:
    broken = {"yes": True}

    async def fail_while_broken(note: str) -> None:
        if broken["yes"]:
            raise ValueError("rule set references a field the form does not have")

    relay = kit.relay(settings, database)
    runner = kit.runner(settings, database, kit.consumer("strict", behaviour=fail_while_broken))
    dlq_reader = topic_reader(settings, DEAD_LETTER_TOPIC.name)
    relay.start()
    runner.start()
    try:
        async with database.sessionmaker() as session, session.begin():
            poisoned = await kit.record(session, "poison")
        await eventually(lambda: _count_dead(kit, database, 1))
        assert kit.calls == ["poison"] * settings.consumer_max_attempts
        assert await kit.effect_notes(database, "strict") == []

        async with database.sessionmaker() as session:
            [dead] = await list_dead_letters(session, outbox=kit.outbox)
        assert dead["event_id"] == poisoned.id
        assert dead["attempts"] == settings.consumer_max_attempts
        assert "rule set references" in dead["error"]

        # The operator's stream announces it.
        await dlq_reader.start()
        announced = await _find_dead_letter_message(dlq_reader, str(dead["id"]))
        assert announced["data"]["original_event_id"] == poisoned.id
        assert announced["data"]["consumer"] == "strict"

        broken["yes"] = False  # the bug is fixed; replay
        async with database.sessionmaker() as session, session.begin():
            assert await replay_dead_letter(
                session, outbox=kit.outbox, dead_letter_id=str(dead["id"])
            )
        await eventually(lambda: _has(kit, database, "strict", "poison"))
        assert await kit.effect_notes(database, "strict") == ["poison"]
        async with database.sessionmaker() as session:
            assert await list_dead_letters(session, outbox=kit.outbox) == []
            with pytest.raises(DeadLetterError, match="already replayed"):
                await replay_dead_letter(session, outbox=kit.outbox, dead_letter_id=str(dead["id"]))
    finally:
        await dlq_reader.stop()
        await runner.stop()
        await relay.stop()


async def _has(kit: Kit, database: Database, group: str, note: str) -> bool:
    return note in await kit.effect_notes(database, group)


async def _has_all(kit: Kit, database: Database, group: str, notes: list[str]) -> bool:
    return set(notes) <= set(await kit.effect_notes(database, group))


async def _none_unpublished(kit: Kit, database: Database) -> bool:
    return await kit.unpublished(database) == 0


async def _count_dead(kit: Kit, database: Database, expected: int) -> bool:
    return await kit.count(database, kit.tables.dead_letter) == expected


async def _find_dead_letter_message(reader: AIOKafkaConsumer, dead_letter_id: str) -> dict:
    async def scan() -> dict:
        while True:
            batches = await reader.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    message = json.loads(record.value)
                    if message["data"]["dead_letter_id"] == dead_letter_id:
                        return message

    return await asyncio.wait_for(scan(), timeout=30)


async def test_two_relays_send_each_row_once_and_keep_each_aggregates_order(
    kit: Kit, settings: Settings, database: Database
) -> None:
    relays = [kit.relay(settings, database), kit.relay(settings, database)]
    reader = topic_reader(settings, kit.event.topic)
    for relay in relays:
        relay.start()
    try:
        aggregates = [f"application-{n}" for n in range(5)]
        expected = {a: [f"{a}#{i}" for i in range(20)] for a in aggregates}
        for i in range(20):  # interleave the aggregates, one transaction per event
            for aggregate in aggregates:
                async with database.sessionmaker() as session, session.begin():
                    await kit.record(session, f"{aggregate}#{i}", aggregate=aggregate)
        await eventually(lambda: _none_unpublished(kit, database))
        await reader.start()
        seen: dict[str, list[str]] = {a: [] for a in aggregates}
        ids: list[str] = []

        async def read_all() -> None:
            while sum(map(len, seen.values())) < 100:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    for record in records:
                        message = json.loads(record.value)
                        ids.append(message["id"])
                        seen[message["data"]["entry_id"]].append(message["data"]["note"])

        await asyncio.wait_for(read_all(), timeout=30)
        assert len(ids) == len(set(ids)) == 100  # no row sent twice
        assert seen == expected  # each aggregate's events in commit order
    finally:
        await reader.stop()
        for relay in relays:
            await relay.stop()


async def test_correlation_id_travels_from_request_to_handler(
    kit: Kit, settings: Settings, database: Database
) -> None:
    from wangban.observability import bound_context, current_context

    observed: list[dict[str, str | None]] = []

    async def remember_context(note: str) -> None:
        observed.append(current_context())

    relay = kit.relay(settings, database)
    runner = kit.runner(settings, database, kit.consumer("ctx", behaviour=remember_context))
    relay.start()
    runner.start()
    try:
        with bound_context(request_id="req-42", correlation_id="corr-42"):
            async with database.sessionmaker() as session, session.begin():
                envelope = await kit.record(session, "traced")
        assert envelope.correlationid == "corr-42" and envelope.causationid == "req-42"
        await eventually(lambda: _has(kit, database, "ctx", "traced"))
        [context] = observed
        # Anything the handler publishes or calls carries the chain on.
        assert context["correlation_id"] == "corr-42"
        assert context["causation_id"] == envelope.id
    finally:
        await runner.stop()
        await relay.stop()


async def test_a_relay_is_woken_at_commit_in_its_own_process_and_by_notify_from_another(
    kit: Kit, infrastructure: Infrastructure, database: Database
) -> None:
    """With the poll 30 s away, only a wake-up can send an event within seconds. A writer in
    the relay's process wakes it through the after-commit hook and needs no ``pg_notify``; a
    writer in another process (here: another ``Outbox`` on the same tables, with no relay)
    sends ``pg_notify``, which the relay LISTENs for."""
    from sqlalchemy import event as sa_event

    from wangban.outbox import Outbox

    settings = make_settings(infrastructure, outbox_poll_interval_s=30.0)
    elsewhere = Outbox(
        schema=kit.schema,
        source="/wangban/test/elsewhere",
        tables=kit.tables,
        registry=kit.registry,
    )
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    relay = kit.relay(settings, database)
    runner = kit.runner(settings, database, kit.consumer("woken"))
    relay.start()
    runner.start()
    sa_event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await asyncio.sleep(0.5)  # the relay's first round and LISTEN are done
        async with database.sessionmaker() as session, session.begin():
            await kit.record(session, "same-process")
        await eventually(lambda: _has(kit, database, "woken", "same-process"), timeout_s=10)
        assert not any("pg_notify" in s for s in statements)

        async with database.sessionmaker() as session, session.begin():
            await session.execute(
                kit.ledger.insert().values(entry_id=str(uuid.uuid4()), note="other-process")
            )
            await elsewhere.publish(session, kit.event(entry_id=str(uuid.uuid4()), note="other"))
        assert any("pg_notify" in s for s in statements)
        await eventually(lambda: _has(kit, database, "woken", "other"), timeout_s=10)
    finally:
        sa_event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
        await runner.stop()
        await relay.stop()
