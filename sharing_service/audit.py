"""The lookup audit log: append-only and tamper-evident (数据查询留痕).

Every lookup — granted, denied, not found or failed — appends one record. Records are numbered
without gaps (``seq``) and each one's ``hash`` is an HMAC-SHA256, under the chain key
(``WANGBAN_AUDIT_CHAIN_KEY``), over every column of the record, the previous record's MAC
(``prev_hash``) included, starting from a genesis value of zeros. The key is not in the
database: someone who can rewrite the table (a superuser, the table's owner, a doctored
backup) can change a record but cannot compute the MACs that would make the chain agree again.

Editing, deleting or inserting a record breaks a MAC, a link or the numbering; truncating the
tail no longer matches the chain head. Against someone who *does* hold the key (or truncates
both records and head), the head is periodically signed with Ed25519 and published as a
checkpoint (:func:`write_checkpoint`): an ``audit.checkpoint`` event partners keep, and an
object in the object store, outside the database. :func:`verify_chain` checks the chain under
the key and against the latest checkpoint it can read, so a rewrite or truncation before a
checkpoint is found even when every MAC was recomputed with the right key.

Appending is one statement (:func:`append_all`): it locks the chain head row, moves it and
inserts the records only if the head is where the process chained them from (the MACs are
computed here, so the key never reaches the database), and answers where the head is
otherwise. Appenders queue on that row lock, which is what makes the numbering gap-free and
the links unambiguous; a lookup appends in autocommit, so the lock lasts one statement.
Records are announced as ``lookup.audited`` by tailing this log
(:mod:`sharing_service.audit_stream`), not through an outbox row each.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from sqlalchemy import bindparam, inspect, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from sharing_service import repository
from sharing_service.events import AuditCheckpointed, LookupAudited, outbox
from sharing_service.models import LookupAudit
from sharing_service.signing import SigningKey, VerifyingKey, sign_statement, verify_statement
from wangban.db import Database, advisory_lock, holds_transaction
from wangban.settings import ConfigurationError, Settings, get_settings
from wangban.storage import (
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    object_store_from_settings,
)

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
VERIFY_BATCH = 1000
MAC_DOMAIN: Final = b"wangban.sharing.lookup_audit.v2\n"
"""Prefix of every MAC input: the chain key authenticates audit records and nothing else."""
CHECKPOINT_CONTEXT: Final = "wangban.sharing.audit-checkpoint.v1"
CHAIN_NAME: Final = "sharing.lookup_audit"
CHECKPOINT_PREFIX: Final = "audit-checkpoints"
LATEST_CHECKPOINT: Final = f"{CHECKPOINT_PREFIX}/latest.json"
_CHECKPOINT_LOCK: Final = "sharing.audit_checkpoint"


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditKeys:
    """The chain's HMAC key and the checkpoint signing key, both from the settings (never
    from the database)."""

    chain_key: bytes
    checkpoint_key: SigningKey

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditKeys:
        chain_key = settings.audit_chain_key.get_secret_value().encode()
        if not chain_key:
            raise ConfigurationError("WANGBAN_AUDIT_CHAIN_KEY is empty")
        try:
            seed = base64.b64decode(settings.audit_checkpoint_key.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            seed = b""
        if len(seed) != 32:
            raise ConfigurationError(
                "WANGBAN_AUDIT_CHECKPOINT_KEY must be the base64 of a 32-byte Ed25519 seed"
            )
        probe = SigningKey.from_private_bytes(seed, kid="probe")
        # The key id is a fingerprint of the public key: a rotated key has another id, and a
        # verifier holding several public keys picks the right one.
        kid = "audit-" + hashlib.sha256(probe.public_key().raw).hexdigest()[:16]
        return cls(chain_key=chain_key, checkpoint_key=SigningKey.from_private_bytes(seed, kid=kid))

    @property
    def verifying_key(self) -> VerifyingKey:
        return self.checkpoint_key.public_key()


_configured: AuditKeys | None = None


def configure(settings: Settings) -> None:
    """Use ``settings``' keys in this process (the sharing app calls it when it is built)."""
    global _configured
    _configured = AuditKeys.from_settings(settings)


def current_keys() -> AuditKeys:
    """The keys :func:`configure` set, else those of the process's environment settings."""
    global _configured
    if _configured is None:
        _configured = AuditKeys.from_settings(get_settings())
    return _configured


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """What one lookup record states, before it is numbered and chained."""

    consumer: str
    requested_by: str
    subject_kind: str
    subject_ref: str
    subject_masked: str
    dataset_code: str
    fields: Sequence[str]
    predicates: Sequence[dict[str, Any]]
    application_id: str | None
    item_code: str
    outcome: str
    reason: str = ""
    actor_subject: str | None = None
    """The person on whose behalf the lookup ran (a clerk's or reviewer's user id, or the
    applicant's own opaque id); None when a service ran it on its own (秒批)."""
    actor_department: str | None = None
    actor_role: str | None = None


def _plain(value: Any) -> Any:
    """A column value as JSON. ``datetime`` is normalised to UTC with microseconds, which is
    exactly what PostgreSQL's timestamptz keeps, so a record MACs the same before and after a
    round trip through the database."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _content(row: LookupAudit) -> dict[str, Any]:
    """Every column of the record except its own MAC — whatever columns the table has, so a
    column added later is covered without anyone remembering to add it here. A NULL column is
    left out rather than written as null, so adding a nullable column does not change the MAC
    of the records written before it (and null cannot be confused with any value)."""
    content: dict[str, Any] = {}
    for attribute in inspect(LookupAudit).column_attrs:
        if attribute.key == "hash":
            continue
        value = getattr(row, attribute.key)
        if value is not None:
            content[attribute.key] = _plain(value)
    return content


def record_mac(row: LookupAudit, *, key: bytes) -> str:
    canonical = json.dumps(
        _content(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    return hmac.new(key, MAC_DOMAIN + canonical, hashlib.sha256).hexdigest()


APPEND_CHANNEL: Final = "wangban_sharing_audit"
"""Notified (payload: the new head's ``seq``) when records are appended: the replica that
publishes ``lookup.audited`` (:mod:`sharing_service.audit_stream`) reads what it was not
handed in-process."""
GUESSES: Final = 3
"""Attempts from where the head was last seen before queueing for it in a transaction."""

# One statement appends: lock the head, move it only if it is where the records were chained
# from, insert the records only if it moved (and, unless this process publishes them itself,
# tell the publisher). Whether or not it moved, the head as locked comes back, so a wrong
# guess costs one more statement, never a read.
_APPEND_SQL = """
    WITH head AS MATERIALIZED (
        SELECT seq, hash FROM sharing.audit_head WHERE id = 1 FOR UPDATE
    ), moved AS (
        UPDATE sharing.audit_head AS h SET seq = :last_seq, hash = :last_hash
        FROM head
        WHERE h.id = 1 AND head.seq = :prev_seq AND head.hash = :prev_hash
        RETURNING h.seq
    ), appended AS (
        INSERT INTO sharing.lookup_audit
        SELECT r.* FROM jsonb_populate_recordset(NULL::sharing.lookup_audit, :records) AS r
        WHERE EXISTS (SELECT FROM moved)
        RETURNING seq
    )
    SELECT head.seq, head.hash, (SELECT count(*) FROM appended) AS appended{notify}
    FROM head
"""
_NOTIFY = """,
           CASE WHEN EXISTS (SELECT FROM moved)
                THEN pg_notify(:channel, CAST(:last_seq AS text)) END AS notified"""
_APPEND = text(_APPEND_SQL.format(notify=_NOTIFY)).bindparams(bindparam("records", type_=JSONB))
_APPEND_QUIETLY = text(_APPEND_SQL.format(notify="")).bindparams(bindparam("records", type_=JSONB))
_LOCK_HEAD = text("SELECT seq, hash FROM sharing.audit_head WHERE id = 1 FOR UPDATE")


@dataclass
class _Head:
    """Where this process last saw the chain end: the guess each append chains from."""

    seq: int = 0
    hash: str = GENESIS_HASH


_head = _Head()
_appending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
"""Serialises this process's appends in autocommit, so they chain from each other's head and
never lose the race among themselves (another replica still may: the statement checks). One
lock per event loop (a lock belongs to the loop it first waited in)."""


def _appending_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _appending.get(loop)
    if lock is None:
        lock = _appending[loop] = asyncio.Lock()
    return lock


class Publisher(Protocol):
    """The in-process publisher of ``lookup.audited`` (:mod:`sharing_service.audit_stream`)."""

    def takes(self, session: AsyncSession) -> bool:
        """Whether it publishes what this session appends (it leads, on the same database)."""
        ...

    def offer(self, session: AsyncSession, rows: Sequence[LookupAudit]) -> None:
        """Records appended through ``session`` and committed."""
        ...


_publishers: list[Publisher] = []


def on_committed(publisher: Publisher) -> None:
    """Hand ``publisher`` the records of each append committed on its own (see
    :func:`append_all`), so it publishes them without reading them back; while it
    :meth:`~Publisher.takes` them, appends notify no other process."""
    _publishers.append(publisher)


def ignore_committed(publisher: Publisher) -> None:
    with contextlib.suppress(ValueError):
        _publishers.remove(publisher)


def _record(
    entry: AuditEntry, *, record_id: str, seq: int, prev: str, at: datetime, key: bytes
) -> LookupAudit:
    row = LookupAudit(
        seq=seq,
        id=record_id,
        at=at,
        consumer=entry.consumer,
        requested_by=entry.requested_by,
        subject_kind=entry.subject_kind,
        subject_ref=entry.subject_ref,
        subject_masked=entry.subject_masked,
        dataset_code=entry.dataset_code,
        fields=list(entry.fields),
        predicates=[dict(p) for p in entry.predicates],
        application_id=entry.application_id,
        item_code=entry.item_code,
        outcome=entry.outcome,
        reason=entry.reason,
        actor_subject=entry.actor_subject,
        actor_department=entry.actor_department,
        actor_role=entry.actor_role,
        prev_hash=prev,
        hash="",
    )
    row.hash = record_mac(row, key=key)
    return row


class _Chain:
    """The records of one append, chained (and chained again) from a head."""

    def __init__(self, entries: Sequence[AuditEntry], *, at: datetime, key: bytes) -> None:
        self.entries, self.at, self.key = entries, at, key
        self.ids = [str(uuid.uuid4()) for _ in entries]
        self.rows: list[LookupAudit] = []
        self.statement = _APPEND

    def from_head(self, seq: int, prev: str) -> dict[str, Any]:
        self.rows = []
        for entry, record_id in zip(self.entries, self.ids, strict=True):
            row = _record(
                entry, record_id=record_id, seq=seq + 1, prev=prev, at=self.at, key=self.key
            )
            self.rows.append(row)
            seq, prev = row.seq, row.hash
        first, last = self.rows[0], self.rows[-1]
        return {
            "prev_seq": first.seq - 1,
            "prev_hash": first.prev_hash,
            "last_seq": last.seq,
            "last_hash": last.hash,
            "records": [{**_content(r), "hash": r.hash} for r in self.rows],
            "channel": APPEND_CHANNEL,
        }


Execute = Callable[[Any, dict[str, Any]], Awaitable[Any]]


async def _append_on(execute: Execute, chain: _Chain, *, seq: int, prev: str) -> bool:
    """Up to :data:`GUESSES` attempts from head ``seq``/``prev`` on (where it was last seen);
    False if the head kept moving."""
    for _attempt in range(GUESSES):
        head = (await execute(chain.statement, chain.from_head(seq, prev))).one()
        if head.appended:
            _head.seq, _head.hash = chain.rows[-1].seq, chain.rows[-1].hash
            return True
        # Another appender (a replica; a transaction of ours that rolled back) moved it.
        seq, prev = int(head.seq), str(head.hash)
        _head.seq, _head.hash = seq, prev
    return False


async def _append_locked(execute: Execute, chain: _Chain) -> None:
    """In a transaction: queue for the head's lock, then append where it is."""
    for _attempt in range(100):
        head = (await execute(_LOCK_HEAD, {})).one()
        if await _append_on(execute, chain, seq=int(head.seq), prev=str(head.hash)):
            return
        # Only where the "transaction" commits each statement (an autocommit session): the
        # lock was not held; each miss means another appender got in, so this ends.
    raise RuntimeError("the audit chain head kept moving")


def _alone(session: AsyncSession) -> AsyncEngine | None:
    """The engine to append on by itself, or None to append in the session: a session of the
    service's unit-of-work factory that has not written (a lookup's unit of work only reads),
    as opposed to one holding a transaction (a test's, a caller's that wrote)."""
    bind = session.bind
    if (
        isinstance(bind, AsyncEngine)
        and bind.get_execution_options().get("isolation_level") is None
        and not holds_transaction()
    ):
        return bind
    return None


async def append_all(
    session: AsyncSession,
    *,
    entries: Sequence[AuditEntry],
    at: datetime,
    keys: AuditKeys | None = None,
) -> list[LookupAudit]:
    """Append records to the chain, in order, in one statement.

    The MACs are computed here, under a key the database never sees, from where this process
    last saw the head; the statement moves the head only if it is still there, else it
    answers where the head is and the records are chained again from it (after a few misses
    — replicas appending as fast as we do — the head is locked in a transaction first).

    A session that holds no transaction (a lookup's unit of work reads, then records)
    appends alone, in autocommit on a connection of its own: the records are committed as
    the statement runs, whatever happens to the request afterwards, and the head's row lock
    lasts one statement, not a transaction. A session in a transaction appends in it (the
    lock then lasts to its commit).

    The rows returned are not in the session: the records as written."""
    if not entries:
        return []
    keys = keys or current_keys()
    chain = _Chain(entries, at=at.astimezone(UTC), key=keys.chain_key)
    engine = _alone(session)
    if engine is None:
        if not await _append_on(session.execute, chain, seq=_head.seq, prev=_head.hash):
            await _append_locked(session.execute, chain)
        return chain.rows
    publishers = [p for p in _publishers if p.takes(session)]
    if publishers:
        # Handed over below: nobody else need be told (a replica that takes over reads what
        # came after the position saved, and its poll finds the rest).
        chain.statement = _APPEND_QUIETLY
    async with _appending_lock():
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            appended = await _append_on(connection.execute, chain, seq=_head.seq, prev=_head.hash)
        if not appended:
            async with engine.begin() as connection:
                await _append_locked(connection.execute, chain)
    for publisher in _publishers:
        publisher.offer(session, chain.rows)
    return chain.rows


async def append(
    session: AsyncSession, *, entry: AuditEntry, at: datetime, keys: AuditKeys | None = None
) -> LookupAudit:
    """Append one record to the chain (see :func:`append_all`)."""
    [row] = await append_all(session, entries=[entry], at=at, keys=keys)
    return row


def announcement(row: LookupAudit) -> LookupAudited:
    """The ``lookup.audited`` event of a record: metadata only, with its place in the chain."""
    return LookupAudited(
        audit_id=row.id,
        seq=row.seq,
        hash=row.hash,
        at=row.at.isoformat(),
        consumer=row.consumer,
        dataset=row.dataset_code,
        fields=list(row.fields),
        predicates=[str(p.get("name", "")) for p in row.predicates],
        application_id=row.application_id,
        item_code=row.item_code,
        outcome=row.outcome,
    )


# --- checkpoints --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement "the chain had ``seq`` records and record ``seq``'s MAC was
    ``mac`` at ``at``"."""

    seq: int
    mac: str
    at: str
    kid: str
    signature: str

    def statement(self) -> dict[str, Any]:
        return {"chain": CHAIN_NAME, "seq": self.seq, "mac": self.mac, "at": self.at}

    def signed_by(self, key: VerifyingKey) -> bool:
        return self.kid == key.kid and verify_statement(
            self.statement(), context=CHECKPOINT_CONTEXT, signature=self.signature, key=key
        )

    def to_json(self) -> bytes:
        body = {**self.statement(), "kid": self.kid, "signature": self.signature}
        return json.dumps(body, sort_keys=True, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Checkpoint:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("chain") != CHAIN_NAME:
            raise ValueError("not a checkpoint of the lookup audit chain")
        seq, mac, at, kid, signature = (
            body.get(k) for k in ("seq", "mac", "at", "kid", "signature")
        )
        if not (isinstance(seq, int) and seq >= 1) or not all(
            isinstance(v, str) for v in (mac, at, kid, signature)
        ):
            raise ValueError("checkpoint fields are missing or of the wrong type")
        return cls(seq=seq, mac=str(mac), at=str(at), kid=str(kid), signature=str(signature))


def checkpoint_object_key(seq: int) -> str:
    return f"{CHECKPOINT_PREFIX}/{seq:020d}.json"


async def read_latest_checkpoint(store: ObjectStore) -> Checkpoint | None:
    """The latest checkpoint written to the store, or None if there is none yet. Raises
    :class:`ObjectStoreError` when the store cannot be read and ValueError for a malformed
    object."""
    try:
        data = await store.get(LATEST_CHECKPOINT)
    except ObjectNotFound:
        return None
    return Checkpoint.from_json(data)


async def write_checkpoint(
    database: Database,
    *,
    store: ObjectStore,
    at: datetime,
    keys: AuditKeys | None = None,
    min_interval_s: float = 0.0,
) -> Checkpoint | None:
    """Sign the chain head and publish it (the store, then an event through the outbox).

    No transaction is open while the store answers (S3 may take its whole timeout): one
    instance at a time holds a session-level advisory lock on a connection of its own
    (:func:`wangban.db.advisory_lock`), reads the head and walks the chain in autocommit,
    calls the store, and only then publishes the event in one short transaction, committed
    before the lock is freed. The next holder reads the checkpoint just stored, so concurrent
    replicas never both sign the same head.

    Only a chain that verifies from the previous checkpoint (or from the start) is signed:
    a checkpoint must never vouch for records someone slipped in without the key. Returns
    None when there is nothing new, the latest checkpoint is younger than ``min_interval_s``,
    another instance is at it, or the chain is broken (which is logged; ``wangban audit
    verify`` says where).
    """
    keys = keys or current_keys()
    async with advisory_lock(database.engine, _CHECKPOINT_LOCK, wait=False) as locked:
        if locked is None:
            return None
        checkpoint = await _sign_head(
            database, store=store, at=at, keys=keys, min_interval_s=min_interval_s
        )
        if checkpoint is None:
            return None
        data = checkpoint.to_json()
        await store.put(
            checkpoint_object_key(checkpoint.seq), data, content_type="application/json"
        )
        await store.put(LATEST_CHECKPOINT, data, content_type="application/json")
        async with database.sessionmaker() as session, session.begin():
            await outbox.publish(
                session,
                AuditCheckpointed(
                    checkpoint_id=f"{CHAIN_NAME}:{checkpoint.seq}",
                    chain=CHAIN_NAME,
                    seq=checkpoint.seq,
                    mac=checkpoint.mac,
                    at=checkpoint.at,
                    kid=checkpoint.kid,
                    public_key=keys.verifying_key.to_b64(),
                    signature=checkpoint.signature,
                ),
            )
        return checkpoint


async def _sign_head(
    database: Database, *, store: ObjectStore, at: datetime, keys: AuditKeys, min_interval_s: float
) -> Checkpoint | None:
    """The signed checkpoint of the chain head as it is now, or None (see write_checkpoint).
    Reads in autocommit: every record up to the head read is committed (an appender commits
    the head with its record), so the walk up to it sees a settled chain."""
    latest = await read_latest_checkpoint(store)
    async with database.read_sessionmaker() as session:
        head = await repository.audit_head(session)
        if head.seq == 0 or (latest is not None and latest.seq >= head.seq):
            return None
        if latest is not None and min_interval_s > 0:
            with contextlib.suppress(ValueError):
                if (at - datetime.fromisoformat(latest.at)).total_seconds() < min_interval_s:
                    return None
        report = ChainReport()
        start_seq, start_mac = 0, GENESIS_HASH
        if latest is not None and latest.signed_by(keys.verifying_key):
            start_seq, start_mac = latest.seq, latest.mac
        await _walk(
            session,
            key=keys.chain_key,
            report=report,
            after=start_seq,
            prev=start_mac,
            until=head.seq,
        )
    if not report.ok or report.last_mac != head.hash or report.last_seq != head.seq:
        logger.error(
            "audit chain does not verify from checkpoint %s to head %s; no checkpoint signed",
            start_seq,
            head.seq,
        )
        return None
    at_text = at.astimezone(UTC).isoformat(timespec="microseconds")
    unsigned = Checkpoint(seq=head.seq, mac=head.hash, at=at_text, kid="", signature="")
    return Checkpoint(
        seq=head.seq,
        mac=head.hash,
        at=at_text,
        kid=keys.checkpoint_key.kid,
        signature=sign_statement(
            unsigned.statement(), context=CHECKPOINT_CONTEXT, key=keys.checkpoint_key
        ),
    )


class CheckpointWorker:
    """The sharing service's checkpoint job, a background worker (``ServiceSpec.workers``)
    rather than a periodic job: a periodic job runs inside one transaction, and this one
    calls the object store, which no transaction may wait for. Looks every ``interval_s``;
    signs when ``WANGBAN_AUDIT_CHECKPOINT_INTERVAL_S`` has passed since the latest checkpoint."""

    name = "audit-checkpoint"

    def __init__(self, database: Database, settings: Settings, *, interval_s: float = 60.0):
        self.interval_s = interval_s
        self._database = database
        self._keys = AuditKeys.from_settings(settings)
        self._min_interval_s = settings.audit_checkpoint_interval_s
        self._store = object_store_from_settings(settings, caller="sharing")

    async def run_once(self) -> int:
        await write_checkpoint(
            self._database,
            store=self._store,
            at=datetime.now(UTC),
            keys=self._keys,
            min_interval_s=self._min_interval_s,
        )
        # Never a backlog to drain: at most one checkpoint per interval, so wait for the next.
        return 0

    async def close(self) -> None:
        await self._store.close()


# --- verification -------------------------------------------------------------------------------


@dataclass
class ChainReport:
    """The result of checking the whole chain. ``ok`` only when nothing at all is wrong."""

    records: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None
    checkpoint_seq: int | None = None
    """The latest signed checkpoint the chain was checked against (None: none found)."""
    last_seq: int = 0
    last_mac: str = GENESIS_HASH
    macs_seen: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def _fail(self, seq: int, problem: str) -> None:
        if self.first_bad_seq is None or seq < self.first_bad_seq:
            self.first_bad_seq = seq
        self.problems.append(problem)


async def _walk(
    session: AsyncSession,
    *,
    key: bytes,
    report: ChainReport,
    after: int = 0,
    prev: str = GENESIS_HASH,
    until: int | None = None,
    watch: int | None = None,
) -> None:
    """Check records ``after + 1`` … ``until`` (or the end) in order: numbering, links and
    MACs. ``watch``: remember the MAC found at that number (a checkpoint's)."""
    expected_seq, prev_hash = after + 1, prev
    while True:
        query = select(LookupAudit).where(LookupAudit.seq > after)
        if until is not None:
            query = query.where(LookupAudit.seq <= until)
        rows = (await session.scalars(query.order_by(LookupAudit.seq).limit(VERIFY_BATCH))).all()
        if not rows:
            break
        for row in rows:
            report.records += 1
            if row.seq != expected_seq:
                report._fail(
                    expected_seq, f"记录 {expected_seq} 至 {row.seq - 1} 缺失（序号不连续）"
                )
            if row.prev_hash != prev_hash:
                report._fail(row.seq, f"记录 {row.seq} 与前一条记录的链接不符")
            if not hmac.compare_digest(record_mac(row, key=key), row.hash):
                report._fail(row.seq, f"记录 {row.seq} 的内容与其校验码不符（被修改）")
            if row.seq == watch:
                report.macs_seen[row.seq] = row.hash
            expected_seq, prev_hash = row.seq + 1, row.hash
        after = rows[-1].seq
        for row in rows:  # a long chain must not pile up in the identity map
            session.expunge(row)
    report.last_seq, report.last_mac = expected_seq - 1, prev_hash


async def verify_chain(
    session: AsyncSession,
    *,
    keys: AuditKeys | None = None,
    store: ObjectStore | None = None,
) -> ChainReport:
    """Walk the chain in order and report every record whose number, link or MAC is wrong,
    a head that does not match the last record (a truncated tail), and — given the store the
    checkpoints are written to — a chain that no longer contains the latest signed
    checkpoint (rewritten or truncated before it, even with the right key)."""
    keys = keys or current_keys()
    report = ChainReport()
    checkpoint: Checkpoint | None = None
    if store is not None:
        try:
            checkpoint = await read_latest_checkpoint(store)
        except (ObjectStoreError, ValueError) as exc:
            report._fail(1, f"无法读取已签名的检查点：{exc}")
        if checkpoint is not None:
            report.checkpoint_seq = checkpoint.seq
            if not checkpoint.signed_by(keys.verifying_key):
                report._fail(checkpoint.seq, f"第 {checkpoint.seq} 条处的检查点签名无效")
                checkpoint = None
    await _walk(
        session, key=keys.chain_key, report=report, watch=checkpoint.seq if checkpoint else None
    )
    head = await repository.audit_head(session)
    if head.seq != report.last_seq or head.hash != report.last_mac:
        report._fail(
            min(head.seq, report.last_seq + 1),
            f"链头（第 {head.seq} 条）与最后一条记录（第 {report.last_seq} 条）不符：记录被删除",
        )
    if checkpoint is not None:
        found = report.macs_seen.get(checkpoint.seq)
        if found is None:
            report._fail(
                checkpoint.seq,
                f"已签名的检查点记到第 {checkpoint.seq} 条，链中已没有这条记录：记录被删除",
            )
        elif not hmac.compare_digest(found, checkpoint.mac):
            report._fail(
                1,
                f"第 {checkpoint.seq} 条记录与已签名的检查点不符：此前的记录被改写",
            )
    return report


# --- published checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A checkpoint as published (the ``audit.checkpoint`` event partners keep), with what an
    auditor checks of it now: its signature under the current key, and that the chain still
    holds, at its number, the record whose MAC it signed."""

    checkpoint: Checkpoint
    published_at: datetime | None
    """When the broker acknowledged the event; None while it is still on its way."""
    signature_valid: bool
    in_chain: bool


async def published_checkpoints(
    session: AsyncSession, *, keys: AuditKeys | None = None, limit: int = 50
) -> list[PublishedCheckpoint]:
    """The latest checkpoints published, newest first, each checked. They are read from the
    service's outbox, which keeps every event it wrote: the same statements partners
    received, whereas the object store can be read only by key (its latest)."""
    keys = keys or current_keys()
    rows = await repository.published_events(
        session, event_type=AuditCheckpointed.event_type, limit=limit
    )
    checkpoints: list[tuple[Checkpoint, datetime | None]] = []
    for envelope, _written, published_at in rows:
        event = AuditCheckpointed.model_validate(envelope["data"])
        checkpoints.append(
            (
                Checkpoint(
                    seq=event.seq,
                    mac=event.mac,
                    at=event.at,
                    kid=event.kid,
                    signature=event.signature,
                ),
                published_at,
            )
        )
    macs = await repository.audit_macs(session, [c.seq for c, _ in checkpoints])
    return [
        PublishedCheckpoint(
            checkpoint=checkpoint,
            published_at=published_at,
            signature_valid=checkpoint.signed_by(keys.verifying_key),
            in_chain=checkpoint.seq in macs
            and hmac.compare_digest(macs[checkpoint.seq], checkpoint.mac),
        )
        for checkpoint, published_at in checkpoints
    ]
