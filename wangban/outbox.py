"""Transactional outbox: events are rows written in the same transaction as the state change,
then relayed to Kafka after commit.

Two ways a row leaves:

- **Direct** (the happy path). A writer in a process that runs the relay keeps what it wrote in
  ``session.info``; the ``after_commit`` hook hands exactly those rows to the relay, which sends
  them at once, with no claim, no lock and no statement of its own. It marks them published
  later and together: one ``UPDATE … WHERE seq = ANY(…)`` for everything acknowledged since the
  last mark, at most every ``outbox_mark_interval_s`` (or sooner when many are waiting, and on
  stop).
- **Recovery** (everything else). Rows nobody is sending: their writer died between commit and
  send, its send failed, or it runs no relay (a CLI tool: it sends ``pg_notify`` with the row's
  ``seq``, delivered at commit). They are claimed ``FOR UPDATE SKIP LOCKED`` exactly as before:
  the rows a notification names at once, any other row once it is older than
  ``outbox_recovery_grace_s`` (by then its writer would have sent it), by the periodic poll.

Why it is safe:

- At least once: a row is marked only after the broker acknowledged it (acks=all). A crash
  between send and mark sends it again through recovery; consumers' inboxes absorb the copy.
- Per-key order. Rows of one key are written by transactions that serialise on their aggregate
  (the state change locks its row), so commit order is the key's order. The relay sends the rows
  handed to it in that order, one producer and one in-flight batch per partition. What a relay
  cannot see is a row of the same key that is still unsent *elsewhere* (its writer crashed, or
  another process has not sent it yet): the direct path must not overtake it. So the insert
  returns, in the same statement, the ``seq`` of every unpublished row of its key the
  transaction could see; the relay sends a row directly only if each of those is one it has sent
  itself (or one ahead of it in the same batch). Otherwise the row is left to recovery, whose
  claim skips any row with an earlier unpublished row of its key outside the batch — it waits
  until that one is marked. Rows this relay has sent but not yet marked are marked before every
  claim, so they never hold recovery back. The rare cost is latency (up to one mark interval when
  two processes write one key moments apart, a grace period when a writer crashed), never order.
- Recovery and a direct send may meet on one row (a transaction that ran longer than the grace
  period, a relay that is slow to send): the row is sent twice. Each path sends a key's rows in
  order and only after the earlier ones were sent, so the first copy of every row arrives in
  order; the inbox drops the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    cast,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql import ColumnElement

from wangban import tracing
from wangban.db import Database, asyncpg_dsn, checked_schema
from wangban.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    DEAD_LETTER_TOPIC,
    Envelope,
    Event,
    EventRegistry,
    envelope_for,
)
from wangban.events import registry as default_registry
from wangban.kafka import BrokerRestarted, CheckedProducer, cancelled_from_outside
from wangban.observability import Metrics
from wangban.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Where each relay keeps its broker epoch (see OutboxRelay._verify_same_broker): a partition of
# a topic the kit always creates.
_EPOCH_PARTITION = TopicPartition(DEAD_LETTER_TOPIC.name, 0)

_WRITTEN_KEY = "wangban.outbox.written"
"""``session.info``: the rows this session's transaction wrote, handed to the relay at commit."""

_MARK_NOW = "mark"
"""The notification a relay sends when it holds a row back for an earlier one of its key that
another process may have sent: relays mark what they sent at once."""

_FIRST_CLAIM_DELAY_S = 0.05

_SENT_MEMORY_S = 120.0
"""How long a relay remembers the rows it sent, to tell that a row another transaction saw
unpublished is in fact on its way: longer than a mark interval plus any sane transaction."""


def define_kit_tables(metadata: MetaData) -> KitTables:
    """Add the outbox, inbox and dead-letter tables to a service's metadata (its own schema)."""
    outbox = Table(
        "outbox",
        metadata,
        # seq orders relaying; event ids are unique per event but a replayed dead letter is
        # written again under its original id, so the id is not the key.
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("event_id", UUID(as_uuid=False), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("key", String(255), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("envelope", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_key_unpublished", "key", postgresql_where=text("published_at IS NULL")),
    )
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", UUID(as_uuid=False), primary_key=True),
        Column("event_type", String(255), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    dead_letter = Table(
        "dead_letter",
        metadata,
        Column("id", UUID(as_uuid=False), primary_key=True),
        Column("consumer", String(200), nullable=False),
        Column("event_id", String(255), nullable=False),
        Column("event_type", String(255), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("key", String(255), nullable=False),
        Column("payload", Text, nullable=False),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("replayed_at", DateTime(timezone=True)),
    )
    return KitTables(outbox=outbox, inbox=inbox, dead_letter=dead_letter)


@dataclass(frozen=True)
class KitTables:
    outbox: Table
    inbox: Table
    dead_letter: Table


@dataclass(frozen=True, slots=True)
class OutgoingRow:
    """An outbox row on its way to the broker: handed over at commit, or claimed."""

    seq: int
    topic: str
    key: str
    envelope: Envelope | dict[str, Any]
    """The envelope as written (handed over) or as stored (claimed: read back from JSONB)."""
    older: tuple[int, ...] = ()
    """Unpublished rows of the same key the writing transaction could see (handed over only)."""

    def value(self) -> bytes:
        envelope = self.envelope
        if not isinstance(envelope, Envelope):
            envelope = Envelope.model_validate(envelope)
        return envelope.to_bytes()


@dataclass(frozen=True, slots=True)
class _Written:
    outbox: Outbox
    row: OutgoingRow
    savepoint: SessionTransaction | None
    """The innermost savepoint it was written in: rolled back with it."""


class Outbox:
    """A service's outbox: where its events are written, and which relay sends them."""

    def __init__(
        self,
        *,
        schema: str,
        source: str,
        tables: KitTables,
        registry: EventRegistry = default_registry,
    ):
        self.schema = checked_schema(schema)
        self.registry = registry
        self.source = source
        self.tables = tables
        self.channel = f"wangban_outbox_{self.schema}"
        self._relay: OutboxRelay | None = None
        outbox = tables.outbox
        self._older = outbox.alias("older")

    async def publish(
        self, session: AsyncSession, event: Event, *, subject: str | None = None
    ) -> Envelope:
        """Write ``event`` to the outbox in the session's transaction (flush, no commit)."""
        envelope = envelope_for(event, source=self.source, subject=subject)
        await self.write(session, envelope, topic=event.topic, key=event.aggregate_key())
        return envelope

    async def write(
        self, session: AsyncSession, envelope: Envelope, *, topic: str, key: str
    ) -> None:
        """Write a ready envelope (also used to replay a dead letter under its original id)."""
        outbox = self.tables.outbox
        insert = outbox.insert().values(
            event_id=envelope.id,
            topic=topic,
            key=key,
            event_type=envelope.type,
            envelope=envelope.model_dump(mode="json", exclude_none=True),
        )
        relay = self._relay
        if relay is None:
            # No relay runs in this process (a tool, an HTTP-only worker): pg_notify, which is
            # delivered at commit and only if the transaction commits, tells the relays
            # elsewhere which row to claim. Called from RETURNING, it costs no statement.
            await session.execute(
                insert.returning(
                    outbox.c.seq, func.pg_notify(self.channel, cast(outbox.c.seq, Text))
                )
            )
            return
        # The relay here will send the row as soon as it commits (the after-commit hook hands
        # it over from session.info).
        seq, before = (await session.execute(insert.returning(*self.returning(key)))).one()
        sync = session.sync_session
        written: list[_Written] = sync.info.setdefault(_WRITTEN_KEY, [])
        written.append(
            _Written(
                outbox=self,
                row=_outgoing(seq=seq, topic=topic, key=key, envelope=envelope, older=before),
                savepoint=sync.get_nested_transaction(),
            )
        )

    def returning(self, key: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        """What an insert into this outbox returns so that the relay here can send the row
        directly: its ``seq``, and the unpublished rows of its key the writing transaction can
        see (by the key's partial index), of which the relay must know each is sent before it
        sends this one (module docstring). For a caller writing the row with a statement of
        its own (with the change it reports): add these to its RETURNING and give what they
        return to :meth:`committed`."""
        older = self._older
        seen = (
            select(func.array_agg(older.c.seq))
            .where(older.c.key == key, older.c.published_at.is_(None))
            .scalar_subquery()
        )
        return self.tables.outbox.c.seq, seen

    def committed(
        self,
        *,
        envelope: Envelope,
        topic: str,
        key: str,
        seq: int,
        older: Sequence[int] | None,
    ) -> None:
        """A row the caller wrote with a statement of its own (RETURNING :meth:`returning`) is
        committed (for an autocommit statement: as soon as it returned): the relay of this
        process sends it now. With no relay here, the periodic recovery will."""
        self.hand_over([_outgoing(seq=seq, topic=topic, key=key, envelope=envelope, older=older)])

    def attach(self, relay: OutboxRelay | None) -> None:
        """The running relay of this process (None: none runs here any more)."""
        self._relay = relay

    def detach(self, relay: OutboxRelay) -> None:
        if self._relay is relay:
            self._relay = None

    def hand_over(self, rows: Sequence[OutgoingRow]) -> None:
        """Committed rows, for this process's relay to send (none running: recovery will)."""
        relay = self._relay
        if relay is not None:
            relay.take(rows)

    def wake(self) -> None:
        """Rows were committed that were not handed over (written by a statement of the
        caller's own, see :meth:`committed` for the cheaper way): the relay here claims
        whatever is unpublished, however young, now."""
        if self._relay is not None:
            self._relay.look_now()


def _outgoing(
    *, seq: int, topic: str, key: str, envelope: Envelope, older: Sequence[int] | None
) -> OutgoingRow:
    # The writing statement's snapshot cannot see its own row, only earlier ones; the filter
    # only says so.
    return OutgoingRow(
        seq=seq,
        topic=topic,
        key=key,
        envelope=envelope,
        older=tuple(s for s in older or () if s < seq),
    )


def _committed_for_real(session: Session) -> bool:
    """False for a session joined to an outer transaction still open (tests roll theirs back):
    its "commit" only released a savepoint, and nothing may leave for the broker yet."""
    bind = session.bind
    return not (isinstance(bind, Connection) and bind.in_transaction())


@event.listens_for(Session, "after_commit")
def _hand_over_after_commit(session: Session) -> None:
    written: list[_Written] | None = session.info.pop(_WRITTEN_KEY, None)
    if not written or not _committed_for_real(session):
        return  # (not handed over: committed later by the outer transaction, recovery sends it)
    by_outbox: dict[Outbox, list[OutgoingRow]] = {}
    for entry in written:
        by_outbox.setdefault(entry.outbox, []).append(entry.row)
    for outbox, rows in by_outbox.items():
        outbox.hand_over(rows)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    written: list[_Written] | None = session.info.get(_WRITTEN_KEY)
    if not written:
        return
    if not previous_transaction.nested:
        session.info.pop(_WRITTEN_KEY, None)
        return

    def inside(savepoint: SessionTransaction | None) -> bool:
        while savepoint is not None:
            if savepoint is previous_transaction:
                return True
            savepoint = savepoint.parent
        return False

    # A savepoint rolled back: its rows are gone, the rest of the transaction goes on.
    written[:] = [entry for entry in written if not inside(entry.savepoint)]


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_WRITTEN_KEY, None)


class OutboxRelay:
    """Publishes a service's outbox rows to Kafka, in order per key, at least once."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        outbox: Outbox,
        metrics: Metrics | None = None,
        service: str = "",
    ):
        self.settings = settings
        self.database = database
        self.outbox = outbox
        self.metrics = metrics
        self.service = service or outbox.schema
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._backlog_counted_at = float("-inf")
        if metrics is not None:
            # Exported from the start (0 until the first count), not only once a poll ran.
            metrics.outbox_backlog.set(0)
        self._instance = secrets.token_hex(6)
        # Created before the first send and again after losing the broker (an embedded broker
        # forgets its topics when it restarts); every batch checked against a broker that
        # restarted meanwhile (wangban.kafka.CheckedProducer).
        self._kafka = CheckedProducer(
            settings,
            client_id=f"{self.service}-relay",
            epoch_group=f"wangban.relay-epoch.{self.service}.{self._instance}",
            topics={*outbox.registry.topics.values(), DEAD_LETTER_TOPIC},
            epoch_partition=_EPOCH_PARTITION,
        )
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        """Set once the first round (rows left unsent by an earlier instance) is done and LISTEN
        is on: from then on a notification from another process reaches this relay."""
        self._autocommit: AsyncEngine = database.engine.execution_options(
            isolation_level="AUTOCOMMIT"
        )
        # The direct path: rows handed over at commit, in commit order.
        self._direct: deque[OutgoingRow] = deque()
        # Sent (acknowledged) and not yet marked; marked together when the interval is up.
        self._unmarked: list[int] = []
        self._mark_due = float("inf")
        # What this relay sent lately (seq → when): a row another transaction saw unpublished
        # but that is on its way does not hold a later row of its key back.
        self._sent: dict[int, float] = {}
        self._sent_pruned_at = time.monotonic()
        # Rows to claim by seq, however young (seq → until when to keep asking): ours that the
        # direct path could not send, and other processes' rows their notifications named.
        self._wanted: dict[int, float] = {}
        self._held_keys: dict[str, int] = {}
        """Keys with a row of ours left to recovery → its seq: later rows of the key wait too."""
        self._claim_at = float("inf")
        self._claim_delay = _FIRST_CLAIM_DELAY_S
        self._claim_everything = False
        self._ask_for_marks = False
        schema = outbox.schema
        # Claim a batch; keep only rows with no earlier unpublished row of the same key outside
        # the batch (held by another relay, sent by another process and not yet marked, or not
        # yet visible to it): those wait their turn. Rows handed to this relay and not sent yet
        # (:mine) are its own to send.
        self._claim = text(
            f"""
            WITH claimed AS (
                SELECT seq, key FROM {schema}.outbox
                WHERE published_at IS NULL
                  AND (seq = ANY(CAST(:wanted AS bigint[]))
                       OR created_at <= now() - make_interval(secs => CAST(:grace AS float8)))
                  AND seq <> ALL(CAST(:mine AS bigint[]))
                ORDER BY seq
                LIMIT :batch
                FOR UPDATE SKIP LOCKED
            )
            SELECT o.seq, o.topic, o.key, o.envelope
            FROM {schema}.outbox o JOIN claimed c ON c.seq = o.seq
            WHERE NOT EXISTS (
                SELECT 1 FROM {schema}.outbox e
                WHERE e.published_at IS NULL AND e.key = c.key AND e.seq < c.seq
                  AND e.seq NOT IN (SELECT seq FROM claimed)
            )
            ORDER BY o.seq
            """  # noqa: S608 - schema is validated by checked_schema
        )
        self._mark = text(
            f"UPDATE {schema}.outbox SET published_at = now() WHERE seq = ANY(:seqs)"  # noqa: S608
        )
        self._backlog = text(
            f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"  # noqa: S608
        )
        # The periodic poll asks first, in autocommit, whether anything is due for recovery
        # (and counts the backlog for the gauge in the same statement); a claim transaction
        # runs only when something is.
        self._due = text(
            f"""
            SELECT count(*) FILTER (
                       WHERE created_at <= now() - make_interval(secs => CAST(:grace AS float8))
                   ) AS due,
                   count(*) AS backlog
            FROM {schema}.outbox WHERE published_at IS NULL
            """  # noqa: S608
        )

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.outbox.attach(self)
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        self.outbox.detach(self)
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout=10)
        with contextlib.suppress(Exception):
            await self._flush_marks()
        await self._kafka.close()
        await self._close_listener()

    def take(self, rows: Iterable[OutgoingRow]) -> None:
        """Rows just committed in this process (the after-commit hook): send them now."""
        self._direct.extend(rows)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def look_now(self) -> None:
        """Claim whatever is unpublished, however young, at the next round."""
        self._claim_everything = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        started = False
        next_poll = 0.0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self._ensure_listener()
                if not started:
                    # An earlier instance of this process may have died with rows committed
                    # and unsent: send them now rather than after the grace period.
                    if await self.relay_once() >= self.settings.outbox_batch_size:
                        continue
                    started = True
                    self.started.set()
                    next_poll = time.monotonic() + self.settings.outbox_poll_interval_s
                while self._direct:
                    await self._send_direct()
                if self._ask_for_marks:
                    await self._request_marks()
                now = time.monotonic()
                if self._claim_everything or (self._wanted and now >= self._claim_at):
                    if await self._claim_round() >= self.settings.outbox_batch_size:
                        continue
                if now >= next_poll:
                    next_poll = now + self.settings.outbox_poll_interval_s
                    if await self._anything_due() and (
                        await self._claim_round() >= self.settings.outbox_batch_size
                    ):
                        next_poll = now  # more waiting: don't sleep
                        continue
                if self._unmarked and (
                    now >= self._mark_due or len(self._unmarked) >= self.settings.outbox_batch_size
                ):
                    await self._flush_marks()
                backoff = 0.1
            except asyncio.CancelledError:
                if cancelled_from_outside():
                    raise
                await self._recover("a client future was cancelled", backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except (KafkaError, OSError, TimeoutError, RelayError, BrokerRestarted) as exc:
                await self._recover(repr(exc), backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:
                # A bug or a database error: keep the relay alive, the rows stay in the outbox.
                log.exception("outbox relay failed; retrying")
                await self._recover("unexpected error", backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            wanted_at = self._claim_at if self._wanted else float("inf")
            mark_at = self._mark_due if self._unmarked else float("inf")
            await self._sleep(min(next_poll, wanted_at, mark_at) - time.monotonic())
        await self._drain()

    async def _drain(self) -> None:
        """On stop: send what was handed over and mark what was sent, within a bounded time;
        what is left is recovered by the next relay."""
        try:
            async with asyncio.timeout(5):
                while self._direct:
                    await self._send_direct()
                await self._flush_marks()
        except Exception as exc:
            log.warning(
                "outbox relay stopped with rows left to recovery",
                extra={"fields": {"service": self.service, "error": repr(exc)}},
            )

    async def _recover(self, error: str, backoff: float) -> None:
        log.warning(
            "outbox relay cannot publish yet; retrying",
            extra={"fields": {"service": self.service, "error": error}},
        )
        await self._kafka.close()
        await self._sleep(backoff)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    # --- the direct path -------------------------------------------------------------------
    async def _send_direct(self) -> None:
        """Send one batch of the rows handed over, without claiming them."""
        batch: list[OutgoingRow] = []
        while self._direct and len(batch) < self.settings.outbox_batch_size:
            batch.append(self._direct.popleft())
        rows = self._in_order(batch)
        if not rows:
            return
        try:
            producer = await self._kafka.ready()
            sent, failure = await self._send(producer, rows)
        except BaseException:
            self._leave_to_recovery(rows)  # sent or not, unknown: recovery sends them (again)
            raise
        self._note_sent(sent)
        if failure is not None:
            done = set(sent)
            self._leave_to_recovery([row for row in rows if row.seq not in done])
            raise RelayError(f"{len(rows) - len(sent)} of {len(rows)} rows not acknowledged") from (
                failure
            )

    def _in_order(self, batch: list[OutgoingRow]) -> list[OutgoingRow]:
        """The rows of ``batch`` the direct path may send now; the others are left to recovery.

        A row may go only if every unpublished row of its key that its transaction saw is one
        this relay sent, or one ahead of it in this batch; and no earlier row of its key was
        left to recovery by this relay. Anything else (a row unsent in another process, or
        sent there and not marked yet) is for the claim, which waits for it."""
        now = time.monotonic()
        self._prune_sent(now)
        going: list[OutgoingRow] = []
        ahead: set[int] = set()
        for row in batch:
            if row.seq in self._sent:
                continue  # a claim took it between its commit and now (a relay starting)
            held = self._held_keys.get(row.key)
            if held is not None and held < row.seq:
                self._leave_to_recovery([row])
                continue
            if any(seq not in self._sent and seq not in ahead for seq in row.older):
                # Most likely sent by another process that has not marked it yet: ask the
                # relays to mark now rather than at their interval, and claim it shortly.
                self._ask_for_marks = True
                self._leave_to_recovery([row])
                continue
            going.append(row)
            ahead.add(row.seq)
        return going

    def _leave_to_recovery(self, rows: Sequence[OutgoingRow]) -> None:
        """Rows of ours the direct path did not send: claimed by seq, soon and however young,
        until the grace period makes them any relay's."""
        if not rows:
            return
        now = time.monotonic()
        until = now + self.settings.outbox_recovery_grace_s
        for row in rows:
            self._wanted[row.seq] = until
            held = self._held_keys.get(row.key)
            if held is None or row.seq < held:
                self._held_keys[row.key] = row.seq
        self._claim_at = min(self._claim_at, now + self._claim_delay)

    async def _request_marks(self) -> None:
        """Ask every relay of this outbox (LISTENing) to mark what it sent now."""
        self._ask_for_marks = False
        async with self._autocommit.connect() as conn:
            await conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": self.outbox.channel, "payload": _MARK_NOW},
            )

    def _note_sent(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        now = time.monotonic()
        for seq in seqs:
            self._sent[seq] = now
        if not self._unmarked:
            self._mark_due = now + self.settings.outbox_mark_interval_s
        self._unmarked.extend(seqs)
        if self.metrics is not None:
            self.metrics.outbox_published_total.inc(len(seqs))

    def _prune_sent(self, now: float) -> None:
        if now - self._sent_pruned_at < 10.0:
            return
        self._sent_pruned_at = now
        cutoff = now - _SENT_MEMORY_S
        self._sent = {seq: at for seq, at in self._sent.items() if at >= cutoff}

    async def _flush_marks(self) -> None:
        """Mark everything sent since the last mark published: one statement, in autocommit."""
        seqs, self._unmarked = self._unmarked, []
        self._mark_due = float("inf")
        if not seqs:
            return
        try:
            async with self._autocommit.connect() as conn:
                await conn.execute(self._mark, {"seqs": seqs})
        except BaseException:
            self._unmarked[:0] = seqs
            self._mark_due = time.monotonic()
            raise

    # --- recovery --------------------------------------------------------------------------
    async def relay_once(self) -> int:
        """Claim and publish one batch of what is unpublished; returns how many rows were sent.

        Not running (``wangban up`` publishing what is pending, a tool): every row, however
        young. A running relay's first round: every row but those of the last two mark
        intervals, which a live writer in another process is sending or has just sent and not
        marked yet (claiming them would only send them twice); a row of an earlier instance of
        this process that died is older than that by the time this one starts."""
        if self._task is None:
            return await self._claim_round(grace=0.0)
        return await self._claim_round(
            grace=min(
                self.settings.outbox_recovery_grace_s, 2 * self.settings.outbox_mark_interval_s
            )
        )

    async def _anything_due(self) -> bool:
        """The periodic poll: is any row old enough that its writer has clearly not sent it?"""
        async with self._autocommit.connect() as conn:
            due, backlog = (
                await conn.execute(self._due, {"grace": self.settings.outbox_recovery_grace_s})
            ).one()
        if self.metrics is not None:
            # Rows sent and not marked yet count too: at most one mark interval's worth.
            self.metrics.outbox_backlog.set(backlog)
            self._backlog_counted_at = time.monotonic()
        return bool(due)

    async def _claim_round(self, *, grace: float | None = None) -> int:
        """Claim and send the rows asked for by seq, and those older than ``grace`` (by default
        the recovery grace period; none at all when asked to look at everything)."""
        if self._claim_everything:
            grace = 0.0
        elif grace is None:
            grace = self.settings.outbox_recovery_grace_s
        self._claim_everything = False
        now = time.monotonic()
        asked = list(self._wanted)
        unmarked, self._unmarked = self._unmarked, []
        self._mark_due = float("inf")
        try:
            sent, claimed, failure = await self._claim_and_send(
                asked=asked, unmarked=unmarked, grace=grace
            )
        except BaseException:
            self._unmarked[:0] = unmarked
            self._mark_due = time.monotonic()
            raise
        for seq in sent:
            self._sent[seq] = now
            self._wanted.pop(seq, None)
        self._release_held(sent)
        # Keep asking for our own rows until the grace period hands them to the poll; a row a
        # notification named is asked for once (if it could not be claimed, its relay has it).
        self._wanted = {seq: until for seq, until in self._wanted.items() if until > now}
        self._held_keys = {key: seq for key, seq in self._held_keys.items() if seq in self._wanted}
        # Asked again soon, then less often: what holds them back is marked elsewhere within
        # moments when asked to, or at worst within its relay's mark interval.
        if self._wanted:
            self._claim_delay = min(self._claim_delay * 2, self.settings.outbox_mark_interval_s)
            self._claim_at = now + self._claim_delay
        else:
            self._claim_delay = _FIRST_CLAIM_DELAY_S
            self._claim_at = float("inf")
        if self.metrics is not None and sent:
            self.metrics.outbox_published_total.inc(len(sent))
        if failure is not None:
            raise RelayError(
                f"{claimed - len(sent)} of {claimed} rows not acknowledged"
            ) from failure
        return len(sent)

    def _release_held(self, sent: Sequence[int]) -> None:
        if not sent:
            return
        done = set(sent)
        self._held_keys = {key: seq for key, seq in self._held_keys.items() if seq not in done}

    async def _claim_and_send(
        self, *, asked: list[int], unmarked: list[int], grace: float
    ) -> tuple[list[int], int, BaseException | None]:
        async with self.database.sessionmaker() as session:
            async with session.begin():
                # What we sent and have not marked is marked first: the claim's order check must
                # not wait for rows that are already on the broker.
                if unmarked:
                    await session.execute(self._mark, {"seqs": unmarked})
                rows = (
                    await session.execute(
                        self._claim,
                        {
                            "batch": self.settings.outbox_batch_size,
                            "wanted": asked,
                            "grace": grace,
                            "mine": [row.seq for row in self._direct],
                        },
                    )
                ).all()
                if not rows:
                    await self._update_backlog(session)
                    return [], 0, None
                producer = await self._kafka.ready()
                sent, failure = await self._send(
                    producer,
                    [
                        OutgoingRow(seq=r.seq, topic=r.topic, key=r.key, envelope=r.envelope)
                        for r in rows
                    ],
                )
                if sent:
                    await session.execute(self._mark, {"seqs": sent})
                await self._update_backlog(session)
        return sent, len(rows), failure

    async def _send(
        self, producer: AIOKafkaProducer, rows: Sequence[OutgoingRow]
    ) -> tuple[list[int], BaseException | None]:
        # Enqueue all, then await: aiokafka keeps one in-flight batch per partition, so rows of
        # one key (one partition) are delivered in the order they were enqueued.
        futures: list[asyncio.Future[Any]] = []
        failure: BaseException | None = None
        spans = self._producer_spans(rows)
        started = time.perf_counter()
        for row in rows:
            try:
                futures.append(
                    await producer.send(
                        row.topic,
                        value=row.value(),
                        key=row.key.encode(),
                        headers=[("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())],
                    )
                )
            except KafkaError as exc:  # e.g. metadata unavailable: the rest waits for next round
                failure = exc
                break
        results = await asyncio.gather(*futures, return_exceptions=True)
        await self._kafka.verify_same_broker()
        sent: list[int] = []
        failed_keys: set[str] = set()
        for row, result in zip(rows, results, strict=False):
            if isinstance(result, BaseException):
                failure = failure or result
                failed_keys.add(row.key)
            elif row.key not in failed_keys:
                sent.append(row.seq)
        if self.metrics is not None:
            self.metrics.observe_publish(
                rows=len(rows), sent=len(sent), duration_s=time.perf_counter() - started
            )
        for index, span in enumerate(spans):
            if index >= len(results) or isinstance(results[index], BaseException):
                span.set_status(Status(StatusCode.ERROR, "not sent"))
            span.end()
        return sent, failure

    def _producer_spans(self, rows: Sequence[OutgoingRow]) -> list[Span]:
        """A producer span per row sent, a child of the span that wrote the row (the envelope's
        traceparent, kept in the row since the writing transaction): the trace goes on through
        this relay, which runs later and maybe in another process."""
        if not tracing.enabled(self.service):
            return []
        tracer = tracing.tracer(self.service)
        spans: list[Span] = []
        for row in rows:
            envelope = row.envelope
            if isinstance(envelope, Envelope):
                traceparent, event_id, event_type = envelope.traceparent, envelope.id, envelope.type
            else:
                traceparent = envelope.get("traceparent")
                event_id, event_type = str(envelope.get("id")), str(envelope.get("type"))
            spans.append(
                tracer.start_span(
                    f"send {row.topic}",
                    context=tracing.parent_from(traceparent),
                    kind=SpanKind.PRODUCER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.operation.type": "send",
                        "messaging.destination.name": row.topic,
                        "messaging.message.id": event_id,
                        "wangban.event.type": event_type,
                    },
                )
            )
        return spans

    async def _update_backlog(self, session: AsyncSession) -> None:
        # A gauge scraped every few seconds: counting the backlog once a second is plenty, and
        # under load, when a round runs after nearly every commit, it saves a query per round.
        if self.metrics is None or time.monotonic() - self._backlog_counted_at < 1.0:
            return
        backlog = (await session.execute(self._backlog)).scalar_one()
        self.metrics.outbox_backlog.set(backlog)
        self._backlog_counted_at = time.monotonic()

    async def _bounded(self, operation: Awaitable[T]) -> T:
        return await self._kafka.bounded(operation)

    # --- LISTEN/NOTIFY ---------------------------------------------------------------------
    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = None
        try:
            conn = await asyncpg.connect(asyncpg_dsn(self.database.url))
            await conn.add_listener(self.outbox.channel, self._on_notify)
            self._listener = conn
        except (OSError, asyncpg.PostgresError) as exc:
            # The poll still works without it; try again on the next round.
            log.warning("outbox LISTEN unavailable", extra={"fields": {"error": repr(exc)}})

    def _on_notify(self, _conn: object, _pid: object, _channel: object, payload: object) -> None:
        # A writer with no relay names its row; claim it now, once (if another relay was
        # quicker, that one sends it). An empty payload (an older release) means "look".
        now = time.monotonic()
        if payload == _MARK_NOW:
            # Another relay holds back a row of a key we sent: mark now, not at the interval.
            if self._unmarked:
                self._mark_due = now
                self._wake.set()
            return
        if isinstance(payload, str) and payload.isdigit():
            self._wanted.setdefault(int(payload), now)
        else:
            self._claim_everything = True
        self._claim_at = now
        self._wake.set()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)


class RelayError(RuntimeError):
    """Some rows of a batch were not acknowledged by the broker; they stay in the outbox."""
