"""The audit chain cannot be rewritten without detection (Trust finding 4): records are
chained with an HMAC under a key the database does not hold, and the head is signed and
published as a checkpoint outside the database, so even a rewrite with the right key before a
checkpoint is found."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import audit
from sharing_service.models import AuditHead, LookupAudit
from sharing_service.signing import VerifyingKey, verify_statement
from wangban.db import Database, advisory_lock
from wangban.settings import ConfigurationError, Environment, Settings
from wangban.storage import LocalObjectStore

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _entry(n: int) -> audit.AuditEntry:
    return audit.AuditEntry(
        consumer="approval",
        requested_by="approval",
        subject_kind="person",
        subject_ref=f"{n:064x}",
        subject_masked="441900********1234",
        dataset_code="gongan.huji",
        fields=["registered_region"],
        predicates=[{"name": "over_80", "field": "age", "op": "ge"}],
        application_id=f"keyed-{n}",
        item_code="TEST-ITEM",
        outcome="denied",
    )


async def _append(session: AsyncSession, count: int) -> list[LookupAudit]:
    return [
        await audit.append(session, entry=_entry(n), at=START + timedelta(seconds=n))
        for n in range(count)
    ]


async def _append_committed(database: Database, count: int) -> list[LookupAudit]:
    """Records as lookups leave them: committed, where the checkpoint job reads them."""
    async with database.sessionmaker() as session, session.begin():
        return await _append(session, count)


@pytest.fixture
async def committed(database: Database) -> AsyncIterator[Database]:
    """The database as the checkpoint job meets it in production: it reads committed records
    and commits its event. Afterwards the records, head and outbox rows the test committed
    are taken back, with the owner's powers (the table refuses deletes)."""
    async with database.read_sessionmaker() as session:
        head = (await session.execute(select(AuditHead.seq, AuditHead.hash))).one()
        outbox_seq = (
            await session.execute(text("SELECT coalesce(max(seq), 0) FROM sharing.outbox"))
        ).scalar_one()
    yield database
    async with database.sessionmaker() as session, session.begin():
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(
            text("DELETE FROM sharing.lookup_audit WHERE seq > :s"), {"s": head.seq}
        )
        await session.execute(
            text("UPDATE sharing.audit_head SET seq = :s, hash = :h"),
            {"s": head.seq, "h": head.hash},
        )
        await session.execute(text("DELETE FROM sharing.outbox WHERE seq > :s"), {"s": outbox_seq})


def _canonical(row: LookupAudit) -> bytes:
    return json.dumps(
        audit._content(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def _plain_sha256(row: LookupAudit) -> str:
    """The attacker who knows the record format but not the key: plain SHA-256."""
    return hashlib.sha256(_canonical(row)).hexdigest()


def _guessed_key(row: LookupAudit) -> str:
    """The attacker who guesses the key (the development default, say)."""
    return audit.record_mac(row, key=b"dev-audit-chain-key-not-for-production-use!")


def _right_key(row: LookupAudit) -> str:
    """The attacker who stole the key itself."""
    return audit.record_mac(row, key=audit.current_keys().chain_key)


async def _rewrite(
    session: AsyncSession,
    *,
    mac: Callable[[LookupAudit], str],
    edit_seq: int | None,
    drop_from: int | None = None,
) -> None:
    """With the owning role's powers: bypass the append-only trigger, edit one record (and
    drop the tail from ``drop_from``), then recompute every link and MAC from the edited record
    on and the head, so the chain is consistent under ``mac``."""
    await session.execute(text("SET LOCAL session_replication_role = replica"))
    if drop_from is not None:
        await session.execute(
            text("DELETE FROM sharing.lookup_audit WHERE seq >= :s"), {"s": drop_from}
        )
    session.expire_all()
    rows = (await session.scalars(select(LookupAudit).order_by(LookupAudit.seq))).all()
    prev = audit.GENESIS_HASH
    for row in rows:
        if edit_seq is not None and row.seq >= edit_seq:
            if row.seq == edit_seq:
                row.outcome = "granted"
            row.prev_hash = prev
            row.hash = mac(row)
        prev = row.hash
    head = (await session.scalars(select(AuditHead))).one()
    head.seq, head.hash = rows[-1].seq, prev
    await session.flush()
    await session.execute(text("SET LOCAL session_replication_role = origin"))
    session.expire_all()


async def _rewrite_committed(
    database: Database, *, edit_seq: int | None, drop_from: int | None = None
) -> None:
    """The rewrite with the right key, committed (the records the checkpoint job read)."""
    async with database.sessionmaker() as session, session.begin():
        await _rewrite(session, mac=_right_key, edit_seq=edit_seq, drop_from=drop_from)


@pytest.mark.parametrize("attacker", [_plain_sha256, _guessed_key], ids=["sha256", "guessed-key"])
async def test_a_consistent_rewrite_without_the_key_fails_verification(
    db_session: AsyncSession, attacker: Callable[[LookupAudit], str]
) -> None:
    rows = await _append(db_session, 4)
    assert (await audit.verify_chain(db_session)).ok
    await _rewrite(db_session, mac=attacker, edit_seq=rows[1].seq)

    report = await audit.verify_chain(db_session)
    assert not report.ok
    assert any("被修改" in p for p in report.problems)


async def test_a_rewrite_with_the_right_key_before_a_checkpoint_is_found(
    committed: Database, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path)
    rows = await _append_committed(committed, 3)
    checkpoint = await audit.write_checkpoint(committed, store=store, at=START)
    assert checkpoint is not None and checkpoint.seq == rows[-1].seq
    await _rewrite_committed(committed, edit_seq=rows[0].seq)

    async with committed.read_sessionmaker() as session:
        # The key alone cannot tell: every MAC is right ...
        assert (await audit.verify_chain(session)).ok
        # ... but the chain no longer holds the MAC the signed checkpoint recorded.
        report = await audit.verify_chain(session, store=store)
    assert not report.ok and report.checkpoint_seq == checkpoint.seq
    assert any("检查点" in p and "改写" in p for p in report.problems)


async def test_a_truncation_before_a_checkpoint_is_found(
    committed: Database, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path)
    rows = await _append_committed(committed, 3)
    await audit.write_checkpoint(committed, store=store, at=START)
    await _rewrite_committed(committed, edit_seq=None, drop_from=rows[1].seq)

    async with committed.read_sessionmaker() as session:
        assert (await audit.verify_chain(session)).ok
        report = await audit.verify_chain(session, store=store)
    assert not report.ok and any("检查点" in p and "删除" in p for p in report.problems)


async def test_a_checkpoint_is_signed_stored_outside_the_database_and_published(
    committed: Database, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path)
    rows = await _append_committed(committed, 2)
    checkpoint = await audit.write_checkpoint(committed, store=store, at=START)
    assert checkpoint is not None
    # Nothing new: no second checkpoint.
    assert await audit.write_checkpoint(committed, store=store, at=START) is None

    stored = json.loads(await store.get(audit.checkpoint_object_key(rows[-1].seq)))
    assert stored == json.loads(await store.get(audit.LATEST_CHECKPOINT))
    assert stored["seq"] == rows[-1].seq and stored["mac"] == rows[-1].hash

    async with committed.read_sessionmaker() as session:
        envelopes = (
            await session.execute(
                text("SELECT envelope FROM sharing.outbox WHERE event_type = :t ORDER BY seq"),
                {"t": "cn.wangban.sharing.audit.checkpoint.v1"},
            )
        ).scalars()
        published = [e["data"] for e in envelopes if e["data"]["seq"] == checkpoint.seq]
    # Published once, committed with the job's own transaction.
    assert len(published) == 1
    data = published[0]
    assert (data["seq"], data["mac"], data["signature"]) == (
        checkpoint.seq,
        checkpoint.mac,
        checkpoint.signature,
    )
    # A partner verifies it with the published public key, from the event alone.
    key = VerifyingKey.from_b64(data["public_key"], kid=data["kid"])
    statement = {k: data[k] for k in ("chain", "seq", "mac", "at")}
    assert verify_statement(
        statement, context=audit.CHECKPOINT_CONTEXT, signature=data["signature"], key=key
    )
    assert not verify_statement(
        {**statement, "seq": statement["seq"] - 1},
        context=audit.CHECKPOINT_CONTEXT,
        signature=data["signature"],
        key=key,
    )


async def test_a_replica_does_not_sign_while_another_holds_the_checkpoint(
    committed: Database, tmp_path: Path
) -> None:
    store = LocalObjectStore(tmp_path)
    rows = await _append_committed(committed, 1)
    # Another replica is at it: this one neither writes to the store nor publishes.
    async with advisory_lock(committed.engine, audit._CHECKPOINT_LOCK, wait=False) as other:
        assert other is not None
        assert await audit.write_checkpoint(committed, store=store, at=START) is None
        assert not await store.exists(audit.LATEST_CHECKPOINT)
    # Freed, the lock lets the next run sign; the one after finds the head already signed.
    checkpoint = await audit.write_checkpoint(committed, store=store, at=START)
    assert checkpoint is not None and checkpoint.seq == rows[-1].seq
    assert await audit.write_checkpoint(committed, store=store, at=START) is None


async def test_a_forged_checkpoint_object_is_reported(committed: Database, tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    await _append_committed(committed, 2)
    checkpoint = await audit.write_checkpoint(committed, store=store, at=START)
    assert checkpoint is not None
    forged = json.loads(checkpoint.to_json())
    forged["mac"] = "f" * 64
    await store.put(audit.LATEST_CHECKPOINT, json.dumps(forged).encode(), content_type="x/y")
    async with committed.read_sessionmaker() as session:
        report = await audit.verify_chain(session, store=store)
    assert not report.ok and any("签名无效" in p for p in report.problems)


def test_production_refuses_the_development_audit_keys(settings: Settings) -> None:
    production = {
        "env": Environment.PRODUCTION,
        "database_url": settings.database_url,
        "kafka_bootstrap": settings.kafka_bootstrap,
    }
    with pytest.raises(ConfigurationError) as refused:
        Settings(**production)  # type: ignore[arg-type]
    assert "WANGBAN_AUDIT_CHAIN_KEY" in str(refused.value)
    assert "WANGBAN_AUDIT_CHECKPOINT_KEY" in str(refused.value)
    with pytest.raises(ConfigurationError, match="WANGBAN_AUDIT_CHAIN_KEY must be at least 32"):
        Settings(**production, audit_chain_key="short")  # type: ignore[arg-type]


async def test_the_checkpoint_worker_signs_into_the_configured_store_at_its_interval(
    committed: Database, settings: Settings, tmp_path: Path
) -> None:
    configured = settings.model_copy(
        update={"data_dir": tmp_path, "audit_checkpoint_interval_s": 3600.0}
    )
    store = LocalObjectStore(tmp_path / "objects")  # where the worker's settings point
    worker = audit.CheckpointWorker(committed, configured)
    try:
        first = await _append_committed(committed, 1)
        await worker.run_once()
        latest = await audit.read_latest_checkpoint(store)
        assert latest is not None and latest.seq == first[-1].seq
        # More records, but the interval has not passed: no new checkpoint yet.
        await _append_committed(committed, 1)
        await worker.run_once()
        again = await audit.read_latest_checkpoint(store)
        assert again is not None and again.seq == first[-1].seq
    finally:
        await worker.close()
