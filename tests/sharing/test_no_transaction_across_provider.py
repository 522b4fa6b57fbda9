"""While a department's system is being asked, sharing holds no transaction: a slow department
over the provider protocol (a real HTTP server on 127.0.0.1), a material resolution that asks
it twice, and ``pg_stat_activity`` watched while each question waits.

Before, the first lookup's audit record opened the transaction and the second question waited
inside it ("idle in transaction", the audit chain's head row locked) up to the deadline."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date

import httpx
import pytest
from sqlalchemy import func, select, text

from sharing_service.directory import ProviderDirectory
from sharing_service.http_provider import HttpProvider
from sharing_service.models import Dataset, LookupAudit
from sharing_service.providers import Subject
from sharing_service.registry import register_provider
from tests.fakes.provider import ProviderServer, serve_provider
from tests.sharing.support import StaticProvider, add_grant, add_item_version, keys, person_id
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.db import Database, TransactionHeldAcrossCall
from wangban.services import load_spec
from wangban.settings import Settings

TOKEN = "slow-department-token"
DELAY_S = 0.6
APPLICANT = person_id(date(1950, 1, 2), 411)


async def _idle_in_transaction(database: Database) -> int:
    async with database.read_sessionmaker() as reads:
        count = await reads.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'idle in transaction'"
            )
        )
        return int(count or 0)


@pytest.fixture
async def department() -> AsyncIterator[tuple[ProviderServer, list[str]]]:
    suffix = uuid.uuid4().hex[:8]
    datasets = [f"slow.a{suffix}", f"slow.b{suffix}"]
    records = StaticProvider({(code, APPLICANT): {"name": "林秀英"} for code in datasets})
    async with serve_provider(records, token=TOKEN, delay_s=DELAY_S) as server:
        yield server, datasets


async def test_no_backend_idles_in_transaction_while_a_slow_department_is_asked(
    settings: Settings, database: Database, department: tuple[ProviderServer, list[str]]
) -> None:
    server, datasets = department
    cipher, _ = keys(settings)
    provider_code = f"slow-{uuid.uuid4().hex[:8]}"
    item = f"TEST-{uuid.uuid4().hex[:12]}"
    async with database.sessionmaker() as session, session.begin():
        await register_provider(
            session,
            code=provider_code,
            name="慢速部门",
            kind="http",
            base_url=server.base_url,
            token=TOKEN,
            read_timeout_s=5.0,
            cipher=cipher,
        )
        await session.flush()
        for code in datasets:
            session.add(
                Dataset(
                    code=code,
                    name=f"慢速数据集 {code}",
                    provider_code=provider_code,
                    subject_kinds=["person"],
                    legal_basis="测试",
                    freshness="实时",
                    fields=[{"name": "name", "title": "姓名", "type": "string", "sensitivity": 2}],
                )
            )
        await session.flush()
        for code in datasets:
            await add_grant(session, consumer="intake", dataset=code, item_code=item)
        version_id = await add_item_version(
            session,
            item_code=item,
            materials=[
                {"name": f"材料{i}", "source": f"shared:{code}"} for i, code in enumerate(datasets)
            ],
        )

    app = create_service_app(load_spec("sharing"), settings, background=False)
    async with app.router.lifespan_context(app):
        app.state.provider_directory = ProviderDirectory(cipher=cipher)
        token = InternalTokens.from_settings(settings).issue(
            Identity(subject="intake", kind="service", assurance=AssuranceLevel.REAL_PERSON),
            issuer="intake",
        )
        application_id = str(uuid.uuid4())
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sharing"
        ) as client:
            asking = asyncio.create_task(
                client.post(
                    "/materials/resolve",
                    json={
                        "item_version_id": version_id,
                        "applicant": {"kind": "person", "id": APPLICANT},
                        "application_id": application_id,
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
            seen = []
            for asked in (1, 2):
                await server.wait_for_requests(asked, timeout_s=10)
                await asyncio.sleep(DELAY_S / 3)  # well inside the department's delay
                seen.append(await _idle_in_transaction(database))
            answer = await asking
    assert answer.status_code == 200, answer.text
    assert [m["status"] for m in answer.json()["materials"]] == ["satisfied", "satisfied"]
    assert seen == [0, 0]
    async with database.read_sessionmaker() as reads:
        recorded = await reads.scalar(
            select(func.count())
            .select_from(LookupAudit)
            .where(LookupAudit.application_id == application_id)
        )
    assert recorded == 2  # both questions audited, in one statement once both had answered


async def test_the_department_client_refuses_to_ask_inside_an_open_transaction(
    database: Database, department: tuple[ProviderServer, list[str]]
) -> None:
    server, datasets = department
    provider = HttpProvider(name="slow", base_url=server.base_url, token=TOKEN)
    try:
        async with database.sessionmaker() as session:
            await session.execute(select(func.pg_advisory_xact_lock(7401)))  # in the transaction
            with pytest.raises(TransactionHeldAcrossCall, match="sharing → provider slow"):
                await provider.fetch(
                    dataset=datasets[0],
                    subject=Subject("person", APPLICANT),
                    fields=[],
                    request_id="r",
                )
            await session.rollback()
        assert server.requests_seen == 0  # refused before anything left the process
        found = await provider.fetch(
            dataset=datasets[0], subject=Subject("person", APPLICANT), fields=[], request_id="r"
        )
        assert found is not None
    finally:
        await provider.close()
