"""Per-service database roles (Trust finding 4): ``wangban db roles`` gives each service a
login that reaches only its own schema, and makes the sharing audit log insert-only for the
sharing service's own login — on the real embedded PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from sharing_service import audit
from wangban.db import Database
from wangban.dbroles import apply_roles, runtime_role
from wangban.services import all_specs
from wangban.settings import Settings


@asynccontextmanager
async def _as(settings: Settings, role: str) -> AsyncIterator[Database]:
    assert settings.database_url
    url = make_url(settings.database_url).set(username=role)
    database = Database(url.render_as_string(hide_password=False), pool_size=1)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture(scope="module")
async def roles(database: Database) -> None:
    schemas = [spec.schema for spec in all_specs()]
    await apply_roles(database, schemas)
    await apply_roles(database, schemas)  # idempotent: the migrate job runs it every release


async def _refused(database: Database, statement: str) -> str:
    with pytest.raises(DBAPIError) as refused:
        async with database.engine.begin() as conn:
            await conn.execute(text(statement))
    return str(refused.value)


async def test_a_service_cannot_read_another_services_schema(
    roles: None, settings: Settings
) -> None:
    async with _as(settings, runtime_role("intake")) as intake:
        async with intake.engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM intake.outbox"))).scalar_one()
            assert count >= 0  # its own schema: allowed
        for table in ("sharing.lookup_audit", "sharing.certificate", "approval.outbox"):
            assert "permission denied" in await _refused(intake, f"SELECT * FROM {table}")


async def test_sharing_appends_audit_records_but_cannot_change_them(
    roles: None, settings: Settings
) -> None:
    async with _as(settings, runtime_role("sharing")) as sharing:
        async with sharing.sessionmaker() as session, session.begin():
            row = await audit.append(
                session,
                entry=audit.AuditEntry(
                    consumer="approval",
                    requested_by="approval",
                    subject_kind="person",
                    subject_ref="f" * 64,
                    subject_masked="441900********1234",
                    dataset_code="gongan.huji",
                    fields=["name"],
                    predicates=[],
                    application_id="roles-test",
                    item_code="TEST-ITEM",
                    outcome="granted",
                ),
                at=datetime.now(UTC),
            )
        async with sharing.sessionmaker() as session:
            assert (await audit.verify_chain(session)).records >= 1
        where = f"WHERE seq = {row.seq}"
        for statement in (
            f"UPDATE sharing.lookup_audit SET outcome = 'denied' {where}",
            f"DELETE FROM sharing.lookup_audit {where}",
            "TRUNCATE sharing.lookup_audit",
        ):
            # Refused by privilege, before the append-only trigger is even consulted.
            assert "permission denied" in await _refused(sharing, statement)
        # Not the owner: it cannot switch the trigger off or take the table.
        for statement in (
            "ALTER TABLE sharing.lookup_audit DISABLE TRIGGER lookup_audit_append_only",
            "SET ROLE wangban_sharing_owner",
        ):
            assert (
                "must be owner" in (message := await _refused(sharing, statement))
                or "permission denied" in message
            )
        # Its other tables stay writable (the head moves with every record).
        async with sharing.engine.begin() as conn:
            await conn.execute(text("UPDATE sharing.audit_head SET seq = seq WHERE id = 1"))
