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

Appending takes the chain head row ``FOR UPDATE``: appenders queue for the few microseconds
between reading the head and their commit, which is what makes the numbering gap-free and the
links unambiguous.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import repository
from sharing_service.events import AuditCheckpointed, LookupAudited, outbox
from sharing_service.models import LookupAudit
from sharing_service.signing import SigningKey, VerifyingKey, sign_statement, verify_statement
from wangban.db import Database, advisory_lock
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


async def append(
    session: AsyncSession, *, entry: AuditEntry, at: datetime, keys: AuditKeys | None = None
) -> LookupAudit:
    """Append one record to the chain (flushed, not committed) and announce it."""
    keys = keys or current_keys()
    head = await repository.lock_audit_head(session)
    row = LookupAudit(
        seq=head.seq + 1,
        id=str(uuid.uuid4()),
        at=at.astimezone(UTC),
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
        prev_hash=head.hash,
        hash="",
    )
    row.hash = record_mac(row, key=keys.chain_key)
    head.seq, head.hash = row.seq, row.hash
    session.add(row)
    await session.flush()
    await outbox.publish(
        session,
        LookupAudited(
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
        ),
    )
    return row


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
