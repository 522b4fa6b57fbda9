"""sharing_0004 re-chains an existing SHA-256 audit chain under the key, and refuses to
re-chain one that is already broken (that would launder the damage)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from sharing_service import audit
from wangban.db import Database
from wangban.migrations import alembic_config
from wangban.services import load_spec
from wangban.settings import Settings


@asynccontextmanager
async def _fresh_database(settings: Settings) -> AsyncIterator[Database]:
    assert settings.database_url
    name = f"h4_migration_{uuid.uuid4().hex[:10]}"
    admin = Database(settings.database_url, pool_size=1)
    async with admin.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    database = Database(
        make_url(settings.database_url).set(database=name).render_as_string(hide_password=False)
    )
    try:
        yield database
    finally:
        await database.dispose()
        async with admin.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}"'))
        await admin.dispose()


async def _upgrade(database: Database, revision: str) -> None:
    spec = load_spec("sharing")
    config = alembic_config(migrations_dir=spec.migrations_dir, schema=spec.schema)

    def run(connection: Connection) -> None:
        connection.execute(text("CREATE SCHEMA IF NOT EXISTS sharing"))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as conn:
        await conn.run_sync(run)


def _v1_hash(content: dict[str, object]) -> str:
    """The chain as sharing_0002 wrote it: plain SHA-256 over the record and the link."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _old_chain(database: Database, count: int, *, break_at: int | None = None) -> None:
    prev = audit.GENESIS_HASH
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    async with database.engine.begin() as conn:
        for seq in range(1, count + 1):
            content: dict[str, object] = {
                "seq": seq,
                "id": str(uuid.uuid4()),
                "at": (start + timedelta(seconds=seq)).isoformat(timespec="microseconds"),
                "consumer": "approval",
                "requested_by": "approval",
                "subject_kind": "person",
                "subject_ref": f"{seq:064x}",
                "subject_masked": "441900********1234",
                "dataset_code": "gongan.huji",
                "fields": ["name"],
                "predicates": [{"name": "over_80", "field": "age", "op": "ge"}],
                "application_id": None,
                "item_code": "TEST-ITEM",
                "outcome": "granted",
                "reason": "",
                "prev_hash": prev,
            }
            digest = _v1_hash(content)
            if seq == break_at:
                content["outcome"] = "denied"  # edited after hashing: the old chain is broken
            await conn.execute(
                text(
                    "INSERT INTO sharing.lookup_audit (seq, id, at, consumer, requested_by, "
                    "subject_kind, subject_ref, subject_masked, dataset_code, fields, predicates, "
                    "application_id, item_code, outcome, reason, prev_hash, hash) VALUES (:seq, "
                    "CAST(:id AS uuid), :at, :consumer, :requested_by, "
                    ":subject_kind, :subject_ref, :subject_masked, :dataset_code, :fields, "
                    "CAST(:predicates AS jsonb), :application_id, :item_code, :outcome, :reason, "
                    ":prev_hash, :hash)"
                ),
                {
                    **content,
                    "at": start + timedelta(seconds=seq),
                    "predicates": json.dumps(content["predicates"]),
                    "hash": digest,
                },
            )
            prev = digest
        await conn.execute(
            text("UPDATE sharing.audit_head SET seq = :seq, hash = :hash"),
            {"seq": count, "hash": prev},
        )


async def test_an_existing_chain_is_checked_then_rechained_under_the_key(
    settings: Settings,
) -> None:
    async with _fresh_database(settings) as database:
        await _upgrade(database, "sharing_0003")
        await _old_chain(database, 3)
        async with database.sessionmaker() as session:
            assert not (await audit.verify_chain(session)).ok  # SHA-256 is not the keyed MAC
        await _upgrade(database, "heads")
        async with database.sessionmaker() as session:
            report = await audit.verify_chain(session)
        assert report.ok and report.records == 3


async def test_a_broken_chain_is_not_rechained(settings: Settings) -> None:
    async with _fresh_database(settings) as database:
        await _upgrade(database, "sharing_0003")
        await _old_chain(database, 3, break_at=2)
        with pytest.raises(RuntimeError, match="broken at record 2"):
            await _upgrade(database, "heads")
