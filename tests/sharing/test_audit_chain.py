"""The lookup audit log is append-only and tamper-evident: verification finds an edited,
deleted or truncated record, and the database itself refuses updates and deletes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import audit
from sharing_service.models import LookupAudit


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
    envelope = (
        await db_session.execute(
            text(
                "SELECT envelope FROM sharing.outbox WHERE event_type = :t "
                "ORDER BY seq DESC LIMIT 1"
            ),
            {"t": "cn.wangban.sharing.lookup.audited.v1"},
        )
    ).scalar_one()
    data = envelope["data"]
    assert data["seq"] == row.seq and data["hash"] == row.hash and data["outcome"] == "granted"
    assert row.subject_ref not in str(envelope) and row.subject_masked not in str(envelope)
    assert data["predicates"] == ["over_80"]
