"""The lookup audit log is append-only and tamper-evident: verification finds an edited,
deleted or truncated record, and the database itself refuses updates and deletes."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import audit, audit_stream
from sharing_service.models import LookupAudit
from wangban.db import Database
from wangban.settings import Settings


def _entry(n: int, outcome: str = "granted") -> audit.AuditEntry:
    return audit.AuditEntry(
        consumer="approval",
        requested_by="approval",
        subject_kind="person",
        subject_ref=f"{n:064x}",
        subject_masked="441900********1234",
        dataset_code="gongan.huji",
        fields=["registered_region"],
        predicates=[{"name": "over_80", "field": "age", "op": "ge"}],
        application_id=f"app-{n}",
        item_code="TEST-ITEM",
        outcome=outcome,
    )


async def _append(session: AsyncSession, count: int) -> list[LookupAudit]:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    return [
        await audit.append(session, entry=_entry(n), at=start + timedelta(seconds=n))
        for n in range(count)
    ]


async def _as_superuser_bypassing_triggers(session: AsyncSession, statement: str) -> None:
    """What an attacker with database superuser rights (or a doctored backup) can do: the
    append-only trigger does not fire for replication sessions."""
    await session.execute(text("SET LOCAL session_replication_role = replica"))
    await session.execute(text(statement))
    await session.execute(text("SET LOCAL session_replication_role = origin"))
    session.expire_all()


async def test_an_untouched_chain_verifies(db_session: AsyncSession) -> None:
    rows = await _append(db_session, 5)
    assert [r.seq for r in rows] == list(range(rows[0].seq, rows[0].seq + 5))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    report = await audit.verify_chain(db_session)
    assert report.ok and report.records >= 5 and report.first_bad_seq is None


async def test_an_edited_record_is_found(db_session: AsyncSession) -> None:
    rows = await _append(db_session, 4)
    target = rows[1].seq
    await _as_superuser_bypassing_triggers(
        db_session,
        f"UPDATE sharing.lookup_audit SET outcome = 'denied' WHERE seq = {target}",
    )
    report = await audit.verify_chain(db_session)
    assert not report.ok and report.first_bad_seq == target
    assert any("被修改" in p for p in report.problems)


async def test_an_edit_that_also_rewrites_the_hash_breaks_the_next_link(
    db_session: AsyncSession,
) -> None:
    rows = await _append(db_session, 3)
    target = rows[0].seq
    await _as_superuser_bypassing_triggers(
        db_session,
        f"UPDATE sharing.lookup_audit SET hash = repeat('a', 64) WHERE seq = {target}",
    )
    report = await audit.verify_chain(db_session)
    assert not report.ok and report.first_bad_seq == target
    assert any(f"记录 {target + 1} 与前一条记录的链接不符" in p for p in report.problems)


async def test_a_deleted_record_is_found(db_session: AsyncSession) -> None:
    rows = await _append(db_session, 4)
    target = rows[2].seq
    await _as_superuser_bypassing_triggers(
        db_session, f"DELETE FROM sharing.lookup_audit WHERE seq = {target}"
    )
    report = await audit.verify_chain(db_session)
    assert not report.ok and report.first_bad_seq == target
    assert any("缺失" in p for p in report.problems)


async def test_a_truncated_tail_is_found(db_session: AsyncSession) -> None:
    rows = await _append(db_session, 3)
    await _as_superuser_bypassing_triggers(
        db_session, f"DELETE FROM sharing.lookup_audit WHERE seq >= {rows[1].seq}"
    )
    report = await audit.verify_chain(db_session)
    assert not report.ok and any("被删除" in p for p in report.problems)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE sharing.lookup_audit SET outcome = 'denied'",
        "DELETE FROM sharing.lookup_audit",
        "TRUNCATE sharing.lookup_audit",
    ],
)
async def test_the_database_refuses_to_change_audit_records(
    db_session: AsyncSession, statement: str
) -> None:
    await _append(db_session, 1)
    with pytest.raises(DBAPIError, match="append-only"):
        async with db_session.begin_nested():
            await db_session.execute(text(statement))


async def test_each_record_is_announced_with_its_chain_position_but_no_personal_data(
    db_session: AsyncSession,
) -> None:
    [row] = await _append(db_session, 1)
    # No outbox row per record: the stream announces the record as read back from the log.
    outbox_rows = await db_session.scalar(
        text("SELECT count(*) FROM sharing.outbox WHERE envelope->'data'->>'audit_id' = :id"),
        {"id": row.id},
    )
    assert outbox_rows == 0
    stored = await db_session.get(LookupAudit, row.seq)
    assert stored is not None
    envelope = audit_stream.envelope_of(stored)
    data = envelope.data
    assert envelope.type == "cn.wangban.sharing.lookup.audited.v1" and envelope.subject == row.id
    assert data["seq"] == row.seq and data["hash"] == row.hash and data["outcome"] == "granted"
    assert row.subject_ref not in envelope.model_dump_json()
    assert row.subject_masked not in envelope.model_dump_json()
    assert data["predicates"] == ["over_80"]
    # Sent again after a crash, a record keeps its envelope id (partners de-duplicate by it),
    # whether it was handed over in-process or read back from the table.
    assert envelope.id == audit_stream.envelope_of(row).id
    assert uuid.UUID(envelope.id).version == 7


async def test_a_lookups_append_is_one_statement_committed_on_its_own(database: Database) -> None:
    """A lookup's unit of work only reads before it records: its record is appended in one
    statement, in autocommit (no transaction, so the head's row lock lasts that statement),
    and is committed whatever happens to the request afterwards."""
    statements: list[str] = []
    transactions: list[str] = []

    def statement(_c: object, _cursor: object, text_: str, *_: object) -> None:
        statements.append(text_.split()[0].upper())

    def began(connection: Connection) -> None:
        if not connection._is_autocommit_isolation():
            transactions.append("BEGIN")

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "begin", began)
    try:
        async with database.sessionmaker() as session:
            await audit.append(session, entry=_entry(1), at=datetime.now(UTC))  # warm guess
            statements.clear()
            row = await audit.append(session, entry=_entry(2), at=datetime.now(UTC))
            await session.rollback()  # the request failed afterwards
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "begin", began)
    assert statements == ["WITH"] and transactions == []
    async with database.read_sessionmaker() as reads:
        stored = await reads.get(LookupAudit, row.seq)
        assert stored is not None and stored.hash == row.hash
        assert (await audit.verify_chain(reads)).ok


async def test_an_append_chained_from_a_stale_head_is_chained_again(database: Database) -> None:
    """Another replica appended since this process last saw the head: the statement moves
    nothing, answers where the head is, and the records are chained again from it."""
    async with database.sessionmaker() as session:
        [first] = await _append(session, 1)
        audit._head.seq, audit._head.hash = first.seq - 1, first.prev_hash  # a stale guess
        [second] = await _append(session, 1)
    assert second.seq == first.seq + 1 and second.prev_hash == first.hash
    async with database.read_sessionmaker() as reads:
        assert (await audit.verify_chain(reads)).ok


async def test_appenders_racing_from_two_replicas_keep_the_chain_gap_free(
    database: Database, settings: Settings
) -> None:
    """Transactions of two engines (as two replicas) append at once from stale guesses: some
    miss and chain again, some queue for the head's lock; every record gets its own number,
    without gaps, each linked to the one before."""
    assert settings.database_url
    other = Database(settings.database_url, pool_size=5)
    try:

        async def append_in_transaction(engine: Database, n: int) -> list[LookupAudit]:
            async with engine.sessionmaker() as session, session.begin():
                await session.connection()  # a transaction held: appended inside it
                audit._head.seq = 0  # as if this process had never seen the head
                return await audit.append_all(
                    session, entries=[_entry(n), _entry(n + 1)], at=datetime.now(UTC)
                )

        appended = await asyncio.gather(
            *(append_in_transaction((database, other)[n % 2], 10 * n) for n in range(16))
        )
    finally:
        await other.dispose()
    seqs = sorted(row.seq for rows in appended for row in rows)
    assert seqs == list(range(seqs[0], seqs[0] + 32))
    async with database.read_sessionmaker() as reads:
        report = await audit.verify_chain(reads)
    assert report.ok, report.problems
