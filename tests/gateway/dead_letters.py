"""A real dead letter, for the ops tests (the gateway's and the console's): a catalogue event
that intake, its one reader of that type, cannot read.

The catalogue's outbox carries an ``item.withdrawn`` whose data lacks what the type requires,
as a producer with a bug would send it; the catalogue's relay publishes it, intake's consumer
finds it unreadable and dead-letters it at once (a record that can never be handled is not
retried). Approval and sharing read the same topic and pass that type over, so intake holds
the only dead letter of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from contracts.catalog.v1 import ItemWithdrawn
from wangban.db import Database
from wangban.events import Envelope, uuid7
from wangban.services import load_spec


async def send_unreadable_withdrawal(database: Database) -> str:
    """Publish the unreadable event through the catalogue's outbox; its event id."""
    outbox = load_spec("catalog").outbox
    assert outbox is not None
    item_id = str(uuid.uuid4())
    envelope = Envelope(
        id=str(uuid7()),
        source=outbox.source,
        type=ItemWithdrawn.event_type,
        subject=item_id,
        time=datetime.now(UTC),
        data={"item_id": item_id},  # no version, code or time: not an item.withdrawn
    )
    async with database.sessionmaker() as session, session.begin():
        await outbox.write(session, envelope, topic=ItemWithdrawn.topic, key=item_id)
    return envelope.id


async def dead_letter_of(database: Database, event_id: str) -> dict[str, Any] | None:
    """Intake's dead letter of that event, once there is one. An unreadable record is kept as
    it came (the payload) under where it was read (``topic/partition/offset`` as its event id,
    type ``unknown``): nothing in it can be trusted."""
    outbox = load_spec("intake").outbox
    assert outbox is not None
    table = outbox.tables.dead_letter
    async with database.sessionmaker() as session:
        found = await session.execute(
            select(table).where(table.c.payload.contains(event_id)).order_by(table.c.created_at)
        )
        row = found.mappings().first()
    return dict(row) if row is not None else None
