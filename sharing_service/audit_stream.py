"""``lookup.audited``, published by tailing the audit log.

The audit log is an ordered log already (``seq`` without gaps, each record committed before
the next can be appended), so announcing each record through an outbox row copied it a second
time: an insert per lookup, and the relay's claim and mark. Instead one replica at a time —
the one holding the advisory lock ``sharing.audit_stream`` on its listening connection — sends
the records after the last one it published, in ``seq`` order, and moves on only once the
broker has acknowledged them (acks=all, and the relay's check that the broker did not restart
meanwhile). How far it got is saved in ``audit_stream`` every :data:`SAVE_EVERY_S` seconds and
when it stops; after a crash the records since the last save are sent again. Partners
therefore receive every record at least once: a repeat has the same envelope id (derived from
the record) and the same ``audit_id`` and ``seq``.

Reading costs nothing in the common case: an append committed on its own hands its records to
this process's stream (:func:`sharing_service.audit.on_committed`), and while this process
publishes, its appends notify nobody. What another replica (or a transaction) appended is
announced by the append statement's ``pg_notify`` with the new head's ``seq``, and read from
the table — as is everything after the saved position when a replica takes over. A read every
:data:`POLL_S` seconds is the safety net for what no notification announced (a replica that
appended quietly just as it lost the lead; a notification missed while the listening
connection was being replaced).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from typing import Final

import asyncpg
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.events import schema_uri
from sharing_service import audit
from sharing_service.events import LOOKUPS_TOPIC, outbox
from sharing_service.models import LookupAudit
from wangban.db import Database, asyncpg_dsn
from wangban.events import CLOUDEVENTS_CONTENT_TYPE, Envelope
from wangban.kafka import BrokerRestarted, CheckedProducer, cancelled_from_outside
from wangban.settings import Settings

logger = logging.getLogger(__name__)

LOCK_NAME: Final = "sharing.audit_stream"
SAVE_EVERY_S: Final = 10.0
"""How often the position is saved while records flow: what a crash may send again."""
POLL_S: Final = 60.0
FOLLOW_S: Final = 5.0
"""How often a replica that does not publish tries to take over."""
GRACE_S: Final = 0.2
"""How long a notified head waits for this process's own records to be handed over before
they are read from the table (the notification may arrive before the hand-over)."""
BATCH: Final = 500

_EPOCH_PARTITION: Final = TopicPartition(LOOKUPS_TOPIC.name, 0)
_POSITION = text(
    "SELECT s.published_seq, h.seq AS head FROM sharing.audit_stream s, sharing.audit_head h "
    "WHERE s.id = 1 AND h.id = 1"
)
_SAVE = text("UPDATE sharing.audit_stream SET published_seq = :seq, saved_at = now() WHERE id = 1")


def event_id(row: LookupAudit) -> str:
    """The envelope id of a record's announcement: a UUIDv7 from the record's time and id, the
    same each time the record is sent, so a partner de-duplicates a repeat by it."""
    ms = int(row.at.timestamp() * 1000) & ((1 << 48) - 1)
    digest = int.from_bytes(hashlib.sha256(row.id.encode()).digest()[:10], "big")
    counter, rand = (digest >> 68) & 0xFFF, digest & ((1 << 62) - 1)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand))


def envelope_of(row: LookupAudit) -> Envelope:
    event = audit.announcement(row)
    return Envelope(
        id=event_id(row),
        source=outbox.source,
        type=event.event_type,
        subject=event.aggregate_key(),
        time=row.at,
        dataschema=schema_uri(event.event_type),
        data=event.model_dump(mode="json"),
    )


class AuditStream:
    """The background worker (``ServiceSpec.workers``) that publishes the audit log."""

    name = "audit-stream"
    interval_s = 0.0  # run_once waits for work itself

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        save_every_s: float = SAVE_EVERY_S,
        poll_s: float = POLL_S,
        follow_s: float = FOLLOW_S,
    ) -> None:
        self._database = database
        self._settings = settings
        self._save_every_s, self._poll_s, self._follow_s = save_every_s, poll_s, follow_s
        self._pool = database.engine.sync_engine.pool
        self._wake = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._leading = False
        self._published: int | None = None
        """The last seq sent and acknowledged (None: not read since taking over)."""
        self._saved: int | None = None
        self._saved_at = time.monotonic()
        self._head_seen = 0
        self._behind = True
        self._handed: dict[int, LookupAudit] = {}
        # Checked after each batch against a broker that restarted and forgot, as the outbox
        # relay's is (wangban.kafka.CheckedProducer).
        self._kafka = CheckedProducer(
            settings,
            client_id="sharing-audit-stream",
            epoch_group=f"wangban.audit-stream-epoch.{secrets.token_hex(6)}",
            topics=[LOOKUPS_TOPIC],
            epoch_partition=_EPOCH_PARTITION,
        )
        self._backoff = 0.1
        audit.on_committed(self)

    # --- what wakes it ---------------------------------------------------------------------

    def _same_database(self, session: AsyncSession) -> bool:
        return getattr(getattr(session.bind, "sync_engine", None), "pool", None) is self._pool

    def takes(self, session: AsyncSession) -> bool:
        """Whether records appended through ``session`` are this stream's to send: it leads,
        and they are appended to its database (then no other process need be notified)."""
        return self._leading and self._published is not None and self._same_database(session)

    def offer(self, session: AsyncSession, rows: Sequence[LookupAudit]) -> None:
        """Records this process just appended and committed."""
        if not self._same_database(session):
            return
        if self._leading and self._published is not None:
            for row in rows:
                if row.seq > self._published:
                    self._handed[row.seq] = row
            self._head_seen = max(self._head_seen, rows[-1].seq)
        self._wake.set()

    def _on_notify(self, _connection: object, _pid: object, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._head_seen = max(self._head_seen, int(payload))
        self._wake.set()

    def _on_lost(self, *_: object) -> None:
        self._wake.set()

    async def _wait(self, seconds: float) -> bool:
        """Until woken (True) or ``seconds`` pass (False)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            return False
        self._wake.clear()
        return True

    # --- leading ---------------------------------------------------------------------------

    async def _lead(self) -> bool:
        """Whether this replica publishes: it holds the lock on its listening connection."""
        connection = self._connection
        if connection is not None and connection.is_closed():
            # The lock went with the connection: another replica may be publishing by now.
            self._connection, self._leading = None, False
            self._published, self._handed = None, {}
            connection = None
        if connection is None:
            connection = await asyncpg.connect(asyncpg_dsn(self._database.url))
            connection.add_termination_listener(self._on_lost)
            await connection.add_listener(audit.APPEND_CHANNEL, self._on_notify)
            self._connection = connection
        if not self._leading:
            self._leading = bool(
                await connection.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", LOCK_NAME)
            )
        return self._leading

    # --- one round -------------------------------------------------------------------------

    async def run_once(self) -> int:
        try:
            if not await self._lead():
                # Not woken by appends: another replica publishes them; only try again later.
                await asyncio.sleep(self._follow_s)
                return 0
            if self._published is None:
                await self._take_over()
            await self._work_to_do()
            sent = await self._publish()
            await self._save(force=False)
            self._backoff = 0.1
            return sent
        except asyncio.CancelledError:
            if cancelled_from_outside():
                raise
            await self._recover("a client future was cancelled")
            return 0
        except (KafkaError, OSError, TimeoutError, BrokerRestarted, asyncpg.PostgresError) as exc:
            await self._recover(repr(exc))
            return 0
        except Exception:
            logger.exception("audit stream failed; retrying")
            await self._recover("unexpected error")
            return 0

    async def _work_to_do(self) -> None:
        """Wait until the next record was handed over or the table must be read: records were
        announced that were not handed over within :data:`GRACE_S` (another replica's, a
        transaction's; ours are handed over as their notification arrives), or nothing came
        for :data:`POLL_S` (the safety net)."""
        loop = asyncio.get_running_loop()
        grace_ends: float | None = None
        while not self._ready():
            assert self._published is not None
            if self._head_seen > self._published:
                grace_ends = grace_ends or loop.time() + GRACE_S
                remaining = grace_ends - loop.time()
                if remaining <= 0 or not await self._wait(remaining):
                    self._behind = True
            elif not await self._wait(self._poll_s):
                self._behind = True

    def _ready(self) -> bool:
        """Something to send without waiting: the next record handed over, or a backlog."""
        return self._behind or (self._published is not None and self._published + 1 in self._handed)

    async def _take_over(self) -> None:
        async with self._database.read_sessionmaker() as session:
            position = (await session.execute(_POSITION)).one()
        # A saved position past the head means the log was cut back (only the table's owner
        # can): publish what comes after the head as it is now.
        self._published = min(int(position.published_seq), int(position.head))
        self._saved, self._saved_at = self._published, time.monotonic()
        self._head_seen = max(self._head_seen, int(position.head))
        self._handed = {}
        self._behind = True
        self._wake.clear()

    async def _publish(self) -> int:
        assert self._published is not None
        sent = 0
        while True:
            rows = self._take_handed()
            if not rows and self._behind:
                announced = self._head_seen
                rows = await self._read(after=self._published)
                if len(rows) < BATCH:
                    self._behind = False
                    if self._head_seen == announced:
                        # All there is was read: an announced record not among it is gone
                        # (the log was cut back), not to be waited for.
                        self._head_seen = rows[-1].seq if rows else self._published
            if not rows:
                return sent
            await self._send(rows)
            self._published = rows[-1].seq
            sent += len(rows)

    def _take_handed(self) -> list[LookupAudit]:
        assert self._published is not None
        rows: list[LookupAudit] = []
        seq = self._published + 1
        while seq in self._handed and len(rows) < BATCH:
            rows.append(self._handed.pop(seq))
            seq += 1
        for stale in [s for s in self._handed if s <= self._published]:
            del self._handed[stale]
        return rows

    async def _read(self, *, after: int) -> list[LookupAudit]:
        async with self._database.read_sessionmaker() as session:
            rows = await session.scalars(
                select(LookupAudit)
                .where(LookupAudit.seq > after)
                .order_by(LookupAudit.seq)
                .limit(BATCH)
            )
            return list(rows)

    async def _save(self, *, force: bool) -> None:
        published = self._published
        if published is None or published == self._saved:
            return
        if not force and time.monotonic() - self._saved_at < self._save_every_s:
            return
        # One statement: committed on its own, no transaction around it.
        async with self._database.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(_SAVE, {"seq": published})
        self._saved, self._saved_at = published, time.monotonic()

    async def _recover(self, error: str) -> None:
        logger.warning(
            "audit stream cannot publish yet; retrying",
            extra={"fields": {"error": error}},
        )
        # Sent or not, what was in flight is read again from the table.
        self._handed, self._behind = {}, True
        await self._kafka.close()
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, 5.0)

    # --- the broker ------------------------------------------------------------------------

    async def _send(self, rows: Sequence[LookupAudit]) -> None:
        producer = await self._kafka.ready()
        # Enqueued in seq order, then awaited: aiokafka keeps one in-flight batch per partition.
        futures = [
            await producer.send(
                LOOKUPS_TOPIC.name,
                value=envelope_of(row).to_bytes(),
                key=row.id.encode(),
                headers=[("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())],
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        await self._kafka.verify_same_broker()

    async def close(self) -> None:
        audit.ignore_committed(self)
        try:
            with contextlib.suppress(Exception):
                await self._save(force=True)
        finally:
            # Leadership first: a replica waits for this lock, and the Kafka clients may take
            # seconds to stop against a broker that is gone (a stop cut short must not leave
            # the lock held by a connection nobody closes).
            connection, self._connection = self._connection, None
            self._leading = False
            if connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), timeout=2)
            await self._kafka.close()
