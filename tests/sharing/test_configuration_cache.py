"""The registry kept per process (datasets, grants, providers, certificate types, keys): read
once, not on every lookup — and a withdrawn grant stops working at once in the process that
withdrew it, within a notification's delivery (milliseconds; asserted under a second here) in
every other one, and immediately in a process whose listening connection is down, which then
reads the registry on every lookup instead of trusting its copy."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service.configuration import ConfigurationCache
from sharing_service.directory import ProviderDirectory
from sharing_service.models import AccessGrant
from sharing_service.registry import put_grant, seed_registry
from tests.kit.support import eventually
from tests.sharing.support import StaticProvider, item_code, keys, person_id
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings

ELDER = person_id(date(1942, 3, 15), 311)


@dataclass
class Sharing:
    client: httpx.AsyncClient
    app: FastAPI
    cache: ConfigurationCache
    statements: Counter[str]
    headers: dict[str, str]

    async def look_up(self, item: str) -> httpx.Response:
        return await self.client.post(
            "/lookups",
            json={
                "subject": {"kind": "person", "id": ELDER},
                "dataset": "gongan.huji",
                "fields": ["name"],
                "predicates": [],
                "purpose": {"item_code": item, "application_id": str(uuid.uuid4())},
            },
            headers=self.headers,
        )


@pytest.fixture
async def sharing(settings: Settings, database: Database) -> AsyncIterator[Sharing]:
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
    app = create_service_app(load_spec("sharing"), settings, background=False)
    async with app.router.lifespan_context(app):
        cipher, _ = keys(settings)
        provider = StaticProvider({("gongan.huji", ELDER): {"name": "陈桂英"}})
        app.state.provider_directory = ProviderDirectory(cipher=cipher, sandbox=provider)
        # What the running service's worker does: listen, and keep the copy.
        cache = ConfigurationCache(app.state.database)
        await cache.run_once()
        assert cache.listening
        statements: Counter[str] = Counter()

        def count(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
            table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+([\w.]+)", statement, re.IGNORECASE)
            statements[f"{statement.split()[0].upper()} {table.group(1) if table else ''}"] += 1

        engine = app.state.database.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        token = InternalTokens.from_settings(settings).issue(
            Identity(subject="approval", kind="service", assurance=AssuranceLevel.REAL_PERSON),
            issuer="approval",
        )
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://sharing"
            ) as client:
                yield Sharing(client, app, cache, statements, {"Authorization": f"Bearer {token}"})
        finally:
            event.remove(engine, "before_cursor_execute", count)
            await cache.close()


async def _granted(database: Database, item: str) -> str:
    async with database.sessionmaker() as session, session.begin():
        row = await put_grant(
            session,
            consumer="approval",
            dataset_code="gongan.huji",
            item_code=item,
            disclose_fields=["name"],
        )
        return row.id


async def _withdrawn_elsewhere(database: Database, grant_id: str) -> None:
    """As another replica (or an operator in psql) withdraws it: plain SQL on another
    connection, nothing this process's ORM sees."""
    async with database.engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM sharing.access_grant WHERE id = :id"), {"id": grant_id}
        )


async def test_the_registry_is_read_once_not_on_every_lookup(
    sharing: Sharing, database: Database
) -> None:
    item = item_code()
    await _granted(database, item)
    assert (await sharing.look_up(item)).status_code == 200
    sharing.statements.clear()
    for _ in range(3):
        answer = await sharing.look_up(item)
        assert answer.status_code == 200, answer.text
    # Three lookups: three audit appends (one statement each), and nothing else.
    assert sharing.statements == Counter({"WITH sharing.audit_head": 3}), sharing.statements


async def test_a_grant_withdrawn_by_another_replica_stops_working_within_a_second(
    sharing: Sharing, database: Database
) -> None:
    item = item_code()
    grant_id = await _granted(database, item)
    assert (await sharing.look_up(item)).status_code == 200  # the grant is now cached
    await _withdrawn_elsewhere(database, grant_id)
    withdrawn = time.monotonic()

    async def denied() -> bool:
        return (await sharing.look_up(item)).status_code == 403

    await eventually(denied, timeout_s=10, interval_s=0.01)
    assert time.monotonic() - withdrawn < 1.0


async def test_a_grant_withdrawn_through_this_process_stops_working_at_once(
    sharing: Sharing, database: Database, settings: Settings
) -> None:
    item = item_code()
    grant_id = await _granted(database, item)
    assert (await sharing.look_up(item)).status_code == 200
    admin = InternalTokens.from_settings(settings).issue(
        Identity(
            subject="u-admin",
            kind="staff",
            roles=frozenset({"data_admin"}),
            assurance=AssuranceLevel.REAL_PERSON,
        ),
        issuer="gateway",
    )
    deleted = await sharing.client.delete(
        f"/admin/grants/{grant_id}", headers={"Authorization": f"Bearer {admin}"}
    )
    assert deleted.status_code == 204, deleted.text
    # No wait at all: the commit itself dropped this process's copy.
    assert (await sharing.look_up(item)).status_code == 403


async def test_without_its_listening_connection_a_process_reads_the_registry_every_time(
    sharing: Sharing, database: Database
) -> None:
    item = item_code()
    grant_id = await _granted(database, item)
    assert (await sharing.look_up(item)).status_code == 200
    listener = sharing.cache._listener
    assert listener is not None
    async with database.engine.connect() as connection:
        await connection.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.get_server_pid()}
        )

    async def deaf() -> bool:
        return not sharing.cache.listening

    await eventually(deaf, timeout_s=10)
    await _withdrawn_elsewhere(database, grant_id)  # a notification nobody receives
    sharing.statements.clear()
    assert (await sharing.look_up(item)).status_code == 403
    assert sharing.statements["SELECT sharing.access_grant"] == 1
    # Listening again, it starts from an empty copy (it may have missed changes).
    await sharing.cache.run_once()
    assert sharing.cache.listening
    grant_id = await _granted(database, item)
    assert (await sharing.look_up(item)).status_code == 200


async def test_cached_rows_are_the_registry_as_read(
    sharing: Sharing, database: Database, db_session: AsyncSession
) -> None:
    item = item_code()
    grant_id = await _granted(database, item)
    assert (await sharing.look_up(item)).status_code == 200
    cached = await sharing.cache.grant(
        consumer="approval", dataset_code="gongan.huji", item_code=item
    )
    stored = (await db_session.scalars(select(AccessGrant).where(AccessGrant.id == grant_id))).one()
    assert cached is not None and cached is not stored
    assert (cached.id, cached.disclose_fields) == (stored.id, stored.disclose_fields)
