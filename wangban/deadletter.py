"""Dead letters: listing them for an operator and replaying one.

Replay puts the original envelope back on its topic, under its original id, through the owning
service's outbox (so it is as reliable as any other publish). Every consumer group sees it again;
groups that already handled it skip it by their inbox, the one that failed gets another go.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wangban.events import Envelope
from wangban.outbox import Outbox


class DeadLetterError(Exception):
    """The dead letter cannot be replayed; the message says why."""


async def list_dead_letters(
    session: AsyncSession, *, outbox: Outbox, include_replayed: bool = False
) -> list[dict[str, Any]]:
    table = outbox.tables.dead_letter
    query = select(table).order_by(table.c.created_at)
    if not include_replayed:
        query = query.where(table.c.replayed_at.is_(None))
    return [dict(row) for row in (await session.execute(query)).mappings()]


async def replay_dead_letter(session: AsyncSession, *, outbox: Outbox, dead_letter_id: str) -> bool:
    """Replay one dead letter of this outbox's service; False if it is not one of them."""
    try:
        uuid.UUID(dead_letter_id)
    except ValueError:
        raise DeadLetterError(f"{dead_letter_id!r} is not a dead letter id (a UUID)") from None
    table = outbox.tables.dead_letter
    row = (
        (await session.execute(select(table).where(table.c.id == dead_letter_id).with_for_update()))
        .mappings()
        .first()
    )
    if row is None:
        return False
    if row["replayed_at"] is not None:
        raise DeadLetterError(f"dead letter {dead_letter_id} was already replayed")
    try:
        envelope = Envelope.from_bytes(row["payload"].encode())
    except ValueError as exc:
        raise DeadLetterError(
            f"dead letter {dead_letter_id} is not a CloudEvents envelope and cannot be replayed"
        ) from exc
    await outbox.write(session, envelope, topic=row["topic"], key=row["key"])
    await session.execute(
        update(table).where(table.c.id == dead_letter_id).values(replayed_at=func.now())
    )
    return True
