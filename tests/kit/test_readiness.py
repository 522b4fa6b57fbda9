"""Readiness of consumers: a service is ready only once each of its consumers has handled what
was on its partitions when the group gave them to it (``ConsumerRunner.caught_up``, behind
``/readyz``), so "ready" never means "ready except for the catalogue it has not read yet". A
member the group gives nothing (more replicas than partitions) is ready at once."""

from __future__ import annotations

import asyncio
import uuid

from tests.kit.support import eventually, make_kit
from wangban.db import Database
from wangban.settings import Settings

BEFORE = 5


async def test_caught_up_only_once_what_was_published_before_the_start_is_handled(
    settings: Settings, database: Database
) -> None:
    kit = make_kit("ready")
    await kit.create(database)
    async with database.sessionmaker() as session, session.begin():
        for i in range(BEFORE):
            await kit.record(session, f"before-{i}")
    relay = kit.relay(settings, database)
    while await relay.relay_once():
        pass
    await relay.stop()

    gate = asyncio.Event()

    async def slow(note: str) -> None:
        await gate.wait()

    runner = kit.runner(
        settings, database, kit.consumer(f"ready-{uuid.uuid4().hex[:6]}", behaviour=slow)
    )
    runner.start()
    try:

        async def handling() -> bool:
            return bool(kit.calls)

        await eventually(handling, timeout_s=60)
        assert not runner.caught_up.is_set()  # assigned and reading, not through yet
        gate.set()
        await asyncio.wait_for(runner.caught_up.wait(), timeout=60)
        assert await kit.count(database, kit.effects) == BEFORE
    finally:
        await runner.stop()


async def test_a_member_given_no_partition_is_ready_at_once(
    settings: Settings, database: Database
) -> None:
    kit = make_kit("idle")  # three partitions
    await kit.create(database)
    group = f"idle-{uuid.uuid4().hex[:6]}"
    runners = [kit.runner(settings, database, kit.consumer(group)) for _ in range(4)]
    for runner in runners:
        runner.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(r.caught_up.wait() for r in runners)), timeout=90)
    finally:
        for runner in runners:
            await runner.stop()
