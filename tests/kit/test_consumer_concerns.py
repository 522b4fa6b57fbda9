"""A consumer passes over the events of a type that are none of its business (``concerns``)
without a transaction or an inbox row, as it does events of a type it has no handler for; the
others are handled as usual, in order. Real database and broker."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from tests.kit.support import eventually, make_kit
from wangban.db import Database
from wangban.settings import Settings


def _consumed(metrics: Any, group: str, event_type: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "wangban_events_consumed_total",
        {"consumer": group, "type": event_type, "outcome": outcome},
    )
    return value or 0.0


async def test_events_that_do_not_concern_a_consumer_are_passed_over_without_an_inbox_row(
    settings: Settings, database: Database
) -> None:
    kit = make_kit("concerns")
    await kit.create(database)
    notes = ["keep-0", "skip-1", "keep-2", "skip-3", "keep-4"]
    async with database.sessionmaker() as session, session.begin():
        for note in notes:
            await kit.record(session, note, aggregate=f"a-{uuid.uuid4().hex[:6]}")
    relay = kit.relay(settings, database)
    try:
        while await relay.relay_once():
            pass
    finally:
        await relay.stop()

    group = f"concerns-{uuid.uuid4().hex[:6]}"
    runner = kit.runner(
        settings,
        database,
        kit.consumer(group, concerns=lambda event: str(event.note).startswith("keep")),
    )
    event_type = kit.event.event_type

    async def all_read() -> bool:
        return (
            _consumed(kit.metrics, group, event_type, "handled") == 3
            and _consumed(kit.metrics, group, event_type, "ignored") == 2
        )

    runner.start()
    try:
        await eventually(all_read)
    finally:
        await runner.stop()
    assert sorted(await kit.effect_notes(database, group)) == ["keep-0", "keep-2", "keep-4"]
    assert sorted(kit.calls) == ["keep-0", "keep-2", "keep-4"]
    async with database.read_sessionmaker() as reads:
        inbox_rows = await reads.scalar(
            select(func.count())
            .select_from(kit.tables.inbox)
            .where(kit.tables.inbox.c.consumer == group)
        )
    assert inbox_rows == 3
