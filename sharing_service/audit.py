"""The lookup audit log: append-only and tamper-evident (数据查询留痕).

Every lookup — granted, denied, not found or failed — appends one record. Records are numbered
without gaps (``seq``) and each one's ``hash`` is SHA-256 over its own content *and* the hash
of the record before it (``prev_hash``), starting from a genesis hash of zeros. Editing a
record changes its hash; deleting or inserting one breaks the links or the numbering;
truncating the tail no longer matches the chain head (and the hashes already published in
``lookup.audited`` events). :func:`verify_chain` finds the first such break.

Appending takes the chain head row ``FOR UPDATE``: appenders queue for the few microseconds
between reading the head and their commit, which is what makes the numbering gap-free and the
links unambiguous.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import repository
from sharing_service.events import LookupAudited, outbox
from sharing_service.models import LookupAudit

GENESIS_HASH = "0" * 64
VERIFY_BATCH = 1000


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


def _content(row: LookupAudit) -> dict[str, Any]:
    """Everything a record states, as hashed. ``at`` is normalised to UTC with microseconds,
    which is exactly what PostgreSQL's timestamptz keeps, so a record hashes the same before
    and after a round trip through the database."""
    return {
        "seq": row.seq,
        "id": str(row.id),
        "at": row.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "consumer": row.consumer,
        "requested_by": row.requested_by,
        "subject_kind": row.subject_kind,
        "subject_ref": row.subject_ref,
        "subject_masked": row.subject_masked,
        "dataset_code": row.dataset_code,
        "fields": list(row.fields),
        "predicates": list(row.predicates),
        "application_id": row.application_id,
        "item_code": row.item_code,
        "outcome": row.outcome,
        "reason": row.reason,
        "prev_hash": row.prev_hash,
    }


def record_hash(row: LookupAudit) -> str:
    canonical = json.dumps(
        _content(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    return hashlib.sha256(canonical).hexdigest()


async def append(session: AsyncSession, *, entry: AuditEntry, at: datetime) -> LookupAudit:
    """Append one record to the chain (flushed, not committed) and announce it."""
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
        prev_hash=head.hash,
        hash="",
    )
    row.hash = record_hash(row)
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


@dataclass
class ChainReport:
    """The result of checking the whole chain. ``ok`` only when nothing at all is wrong."""

    records: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def _fail(self, seq: int, problem: str) -> None:
        if self.first_bad_seq is None:
            self.first_bad_seq = seq
        self.problems.append(problem)


async def verify_chain(session: AsyncSession) -> ChainReport:
    """Walk the chain in order and report every record whose number, link or hash is wrong,
    and a head that does not match the last record (a truncated tail)."""
    report = ChainReport()
    expected_seq, prev_hash = 1, GENESIS_HASH
    after = 0
    while True:
        rows = (
            await session.scalars(
                select(LookupAudit)
                .where(LookupAudit.seq > after)
                .order_by(LookupAudit.seq)
                .limit(VERIFY_BATCH)
            )
        ).all()
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
            if record_hash(row) != row.hash:
                report._fail(row.seq, f"记录 {row.seq} 的内容与其哈希不符（被修改）")
            expected_seq, prev_hash = row.seq + 1, row.hash
        after = rows[-1].seq
        for row in rows:  # a long chain must not pile up in the identity map
            session.expunge(row)
    head = await repository.audit_head(session)
    if head.seq != expected_seq - 1 or head.hash != prev_hash:
        report._fail(
            min(head.seq, expected_seq),
            f"链头（第 {head.seq} 条）与最后一条记录（第 {expected_seq - 1} 条）不符：记录被删除",
        )
    return report
