"""Tolerant readers on the real database and broker: within a type's version a producer may
add a field (docs/partners.md, "additive changes stay v1"); a consumer whose code predates it
applies the event, ignoring the field, instead of dead-lettering it. The producer itself stays
strict: a field its contract does not define is refused before anything is written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from tests.kit.support import Kit, eventually, make_kit
from wangban.db import Database
from wangban.events import Envelope, EventRegistry, uuid7
from wangban.outbox import Outbox
from wangban.settings import Settings


@pytest.fixture
async def kit(database: Database, request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    kit = make_kit(request.node.name.removeprefix("test_")[:20])
    await kit.create(database)
    yield kit


def newer_producer(kit: Kit) -> tuple[type, Outbox]:
    """The same service one release later: its contract for the kit's event type has one more
    (optional) field, registered for the same type in the newer code's registry, and its outbox
    publishes that model. It writes to the same outbox table the relay reads."""
    registry = EventRegistry()
    topic = registry.topic(
        kit.event.topic_spec.name,
        partitions=kit.event.topic_spec.partitions,
        description=kit.event.topic_spec.description,
        key_description=kit.event.topic_spec.key_description,
    )

    today: Any = kit.event

    @registry.event(type=today.event_type, topic=topic, key="entry_id")
    class LedgerEntryRecordedNext(today):
        """A ledger entry was recorded (test event), now saying at which window."""

        window: str = ""

    outbox = Outbox(
        schema=kit.schema, source=kit.outbox.source, tables=kit.tables, registry=registry
    )
    return LedgerEntryRecordedNext, outbox


async def test_an_event_with_a_field_this_consumer_does_not_know_is_applied(
    kit: Kit, settings: Settings, database: Database
) -> None:
    newer_event, newer_outbox = newer_producer(kit)
    relay = kit.relay(settings, database)
    runner = kit.runner(settings, database, kit.consumer("today"))
    relay.start()
    runner.start()
    try:
        async with database.sessionmaker() as session, session.begin():
            sent = await newer_outbox.publish(
                session,
                newer_event(entry_id="e-1", note="from the newer release", window="3号窗口"),
            )
            await kit.record(session, "from today's release")
        assert sent.data["window"] == "3号窗口"  # the field really travels
        await eventually(
            lambda: _notes_are(kit, database, {"from the newer release", "from today's release"})
        )
        await asyncio.sleep(0.5)  # a late dead letter would show up by now
        assert await kit.count(database, kit.tables.dead_letter) == 0
        assert sorted(kit.calls) == ["from the newer release", "from today's release"]
    finally:
        await runner.stop()
        await relay.stop()


async def test_a_field_missing_or_of_the_wrong_type_is_still_not_applied(
    kit: Kit, settings: Settings, database: Database
) -> None:
    """Tolerance is for additions only: an event without a field this code needs (a breaking
    change, which gets a new type version) is dead-lettered at once, as before."""
    runner = kit.runner(settings, database, kit.consumer("today"))
    relay = kit.relay(settings, database)
    relay.start()
    runner.start()
    try:
        async with database.sessionmaker() as session, session.begin():
            for key, data in (
                ("e-missing", {"entry_id": "e-missing", "window": "3号窗口"}),
                ("e-wrong", {"entry_id": "e-wrong", "note": {"not": "a string"}}),
            ):
                envelope = Envelope(
                    id=str(uuid7()),
                    source=kit.outbox.source,
                    type=kit.event.event_type,
                    subject=key,
                    time=datetime.now(UTC),
                    data=data,
                )
                await kit.outbox.write(session, envelope, topic=kit.event.topic, key=key)
        await eventually(lambda: _dead(kit, database, 2))
        assert kit.calls == []
    finally:
        await runner.stop()
        await relay.stop()


async def test_the_producer_refuses_a_field_its_contract_does_not_define(
    kit: Kit, database: Database
) -> None:
    with pytest.raises(ValidationError, match="window"):
        kit.event(entry_id="e-1", note="today's release", window="3号窗口")
    with pytest.raises(ValidationError, match="note"):
        kit.event(entry_id="e-1", note=42)
    assert await kit.count(database, kit.tables.outbox) == 0


async def _notes_are(kit: Kit, database: Database, notes: set[str]) -> bool:
    return set(await kit.effect_notes(database, "today")) == notes


async def _dead(kit: Kit, database: Database, expected: int) -> bool:
    return await kit.count(database, kit.tables.dead_letter) == expected
