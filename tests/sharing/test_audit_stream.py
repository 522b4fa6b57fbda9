"""``lookup.audited`` published by tailing the audit log (no outbox row per lookup), read back
from the real broker as a partner reads it: every record at least once, each stream's records
in ``seq`` order, whether this process appended them (handed over), another replica did
(notified, then read) or a transaction did (notified at its commit); a replica that takes over
starts where the last one saved its position, and one that crashed before saving makes the
next one send its records again — never lose them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from sharing_service import audit
from sharing_service.audit_stream import AuditStream, envelope_of
from sharing_service.events import LOOKUPS_TOPIC
from sharing_service.models import LookupAudit
from tests.kit.support import eventually, topic_reader
from wangban.db import Database
from wangban.events import Envelope
from wangban.settings import Settings


def _entry(tag: str, n: int) -> audit.AuditEntry:
    return audit.AuditEntry(
        consumer="approval",
        requested_by="approval",
        subject_kind="person",
        subject_ref=f"{n:064x}",
        subject_masked="441900********1234",
        dataset_code="gongan.huji",
        fields=["name"],
        predicates=[],
        application_id=f"{tag}-{n}",
        item_code="TEST-STREAM",
        outcome="granted",
    )


class Running:
    """A stream's loop, as the service runs a background worker (``wangban.app.Runtime``)."""

    def __init__(self, stream: AuditStream) -> None:
        self.stream = stream
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            if not await self.stream.run_once():
                await asyncio.sleep(self.stream.interval_s)

    async def _cancel(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def stop(self) -> None:
        """As the service stops: the position is saved."""
        await self._cancel()
        await self.stream.close()

    async def crash(self) -> None:
        """As a killed process: nothing saved, its connections simply gone."""
        await self._cancel()
        audit.ignore_committed(self.stream)
        await self.stream._kafka.close()
        if self.stream._connection is not None:
            self.stream._connection.terminate()


@pytest.fixture
async def replica(settings: Settings) -> AsyncIterator[Database]:
    """Another sharing process's engine: what it appends is not handed to this one's stream."""
    assert settings.database_url
    other = Database(settings.database_url, pool_size=2)
    yield other
    await other.dispose()


async def _position(database: Database) -> int:
    async with database.read_sessionmaker() as session:
        return int(
            (
                await session.execute(text("SELECT published_seq FROM sharing.audit_stream"))
            ).scalar_one()
        )


async def _start_after_head(database: Database) -> None:
    """The stream of this test starts at the head: earlier tests' records are not its business."""
    async with database.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE sharing.audit_stream SET published_seq = "
                "(SELECT seq FROM sharing.audit_head WHERE id = 1)"
            )
        )


async def _append(database: Database, tag: str, numbers: range) -> list[LookupAudit]:
    """Appended as a lookup does: alone, committed as the statement runs."""
    rows = []
    for n in numbers:
        async with database.sessionmaker() as session:
            rows.append(await audit.append(session, entry=_entry(tag, n), at=datetime.now(UTC)))
    return rows


async def _append_in_transaction(database: Database, tag: str, numbers: range) -> list[LookupAudit]:
    async with database.sessionmaker() as session, session.begin():
        await session.execute(select(func.pg_advisory_xact_lock(74021)))  # a transaction held
        return await audit.append_all(
            session, entries=[_entry(tag, n) for n in numbers], at=datetime.now(UTC)
        )


Published = dict[str, list[tuple[int, int, Envelope]]]
"""audit id → (partition, offset, envelope) of each time it was read."""


def _seen(rows: list[LookupAudit], *, times: int = 1) -> Callable[[Published], bool]:
    return lambda published: all(len(published.get(r.id, ())) >= times for r in rows)


async def _read_until(
    settings: Settings, done: Callable[[Published], bool], *, timeout_s: float = 60
) -> Published:
    """Read the lookups topic from the start, as a partner does, until ``done``."""
    reader = topic_reader(settings, LOOKUPS_TOPIC.name)
    await reader.start()
    published: Published = {}
    try:

        async def all_seen() -> bool:
            batches = await reader.getmany(timeout_ms=200)
            for partition, messages in batches.items():
                for message in messages:
                    assert message.value is not None
                    envelope = Envelope.from_bytes(message.value)
                    if envelope.type == "cn.wangban.sharing.lookup.audited.v1":
                        published.setdefault(envelope.data["audit_id"], []).append(
                            (partition.partition, message.offset, envelope)
                        )
            return done(published)

        await eventually(all_seen, timeout_s=timeout_s, interval_s=0)
    finally:
        await reader.stop()
    return published


def _in_seq_order(published: Published, rows: list[LookupAudit]) -> bool:
    """Within each partition, the records appear in the order of their numbers."""
    # (partition, offset) of the first time each was read
    first_seen = {row.id: published[row.id][0][:2] for row in rows}
    by_partition: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        partition, offset = first_seen[row.id]
        by_partition.setdefault(partition, []).append((offset, row.seq))
    return all(
        [seq for _, seq in sorted(pairs)] == sorted(seq for _, seq in pairs)
        for pairs in by_partition.values()
    )


async def test_every_record_reaches_the_topic_in_order_whoever_appended_it(
    settings: Settings, database: Database, replica: Database
) -> None:
    await _start_after_head(database)
    tag = uuid.uuid4().hex[:8]
    stream = AuditStream(database, settings)
    running = Running(stream)
    rows: list[LookupAudit] = []
    try:
        # This process's appends (handed over), another replica's (notified, read), a
        # transaction's (notified when it commits), interleaved.
        rows += await _append(database, tag, range(0, 3))
        rows += await _append(replica, tag, range(3, 5))
        rows += await _append_in_transaction(database, tag, range(5, 8))
        rows += await _append(database, tag, range(8, 10))
        published = await _read_until(settings, _seen(rows))
    finally:
        await running.stop()

    for row in rows:
        _, _, envelope = published[row.id][0]
        assert envelope == envelope_of(row)  # the record as written, MAC and number included
        assert envelope.data["seq"] == row.seq and envelope.data["hash"] == row.hash
    assert _in_seq_order(published, rows)
    # Stopping saved how far it got.
    assert await _position(database) >= rows[-1].seq


async def test_a_replica_taking_over_starts_where_the_last_one_saved(
    settings: Settings, database: Database, replica: Database
) -> None:
    await _start_after_head(database)
    tag = uuid.uuid4().hex[:8]
    first = Running(AuditStream(database, settings))
    before = await _append(database, tag, range(0, 2))
    await _read_until(settings, _seen(before))
    await first.stop()
    saved = await _position(database)
    assert saved >= before[-1].seq

    # Appended while no replica publishes: the next one finds them after the saved position.
    meanwhile = await _append(replica, tag, range(2, 4))
    second = Running(AuditStream(replica, settings))
    try:
        published = await _read_until(settings, _seen(meanwhile))
    finally:
        await second.stop()
    assert all(len(published[r.id]) >= 1 for r in meanwhile)
    assert await _position(database) >= meanwhile[-1].seq


async def test_records_published_before_a_crash_are_published_again_never_lost(
    settings: Settings, database: Database, replica: Database
) -> None:
    await _start_after_head(database)
    start = await _position(database)
    tag = uuid.uuid4().hex[:8]
    # Saves only every hour: the crash comes before any save.
    crashed = Running(AuditStream(database, settings, save_every_s=3600))
    sent = await _append(database, tag, range(0, 3))
    await _read_until(settings, _seen(sent))
    await crashed.crash()
    assert await _position(database) == start

    later = await _append(replica, tag, range(3, 5))
    taking_over = Running(AuditStream(replica, settings, follow_s=0.2))
    try:
        rows = sent + later
        # The crashed replica's records go out again (a partner sees the repeat for what it
        # is: the same envelope id); nothing is skipped.
        published = await _read_until(
            settings, lambda p: _seen(sent, times=2)(p) and _seen(later)(p)
        )
    finally:
        await taking_over.stop()
    for row in rows:
        assert {envelope.id for _, _, envelope in published[row.id]} == {envelope_of(row).id}


async def test_one_replica_publishes_at_a_time_and_another_takes_over_when_it_goes(
    settings: Settings, database: Database, replica: Database
) -> None:
    await _start_after_head(database)
    tag = uuid.uuid4().hex[:8]
    one = Running(AuditStream(database, settings, follow_s=0.2))
    other = Running(AuditStream(replica, settings, follow_s=0.2))
    try:

        async def one_leads() -> bool:
            return one.stream._leading != other.stream._leading

        await eventually(one_leads, timeout_s=30)
        leader, follower = (one, other) if one.stream._leading else (other, one)
        first = await _append(database, tag, range(0, 2))
        await _read_until(settings, _seen(first))
        await leader.stop()

        async def taken_over() -> bool:
            return follower.stream._leading

        await eventually(taken_over, timeout_s=30)
        then = await _append(replica, tag, range(2, 4))
        await _read_until(settings, _seen(then))
    finally:
        for running in (one, other):
            await running.stop()
