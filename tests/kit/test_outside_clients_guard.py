"""The transaction guard on clients of outside systems (the identity register, WeChat, the SMS
gateway, the object store, a department): built by ``wangban.http.external_client`` (or given
the guard by ``guard_transactions``), each refuses a call made while the calling task holds an
open transaction, as the service client does. And the WeChat access token shared through
PostgreSQL is fetched under a lock that is no transaction's.

The callee is a real ASGI app; the database is the suite's."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import MetaData, func, select, text

from tests.kit.support import Kit, make_kit
from wangban.crypto import FieldCipher
from wangban.db import GUARD, Database, TransactionHeldAcrossCall, holds_transaction
from wangban.embedded import free_port
from wangban.http import external_client, guard_transactions
from wangban.s3 import S3ObjectStore
from wangban.settings import Settings
from wangban.storage import LocalObjectStore, ObjectStoreError
from wangban.wechat import PostgresTokenStore, StoredToken, define_wechat_token_table


def _outside() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/person/verify")
    async def verify() -> dict[str, str]:
        return {"result": "match"}

    return app


@pytest.fixture
async def kit(database: Database) -> Kit:
    kit = make_kit("outside")
    await kit.create(database)
    return kit


async def test_an_outside_client_refuses_a_call_inside_an_open_transaction(
    database: Database, kit: Kit
) -> None:
    assert GUARD.mode == "raise"  # the suite's setting, which the client follows by default
    async with external_client(
        caller="gateway",
        system="identity register",
        timeout=httpx.Timeout(5.0),
        transport=httpx.ASGITransport(app=_outside()),
    ) as register:
        async with database.sessionmaker() as session:
            await kit.record(session, "written before asking the register")
            with pytest.raises(TransactionHeldAcrossCall) as refused:
                await register.post("http://register/v1/person/verify", json={})
            assert "gateway → identity register POST /v1/person/verify" in str(refused.value)
            assert "test_outside_clients_guard.py" in str(refused.value)  # the call site
            await session.rollback()
        # Read → call → write: the same call with no transaction open goes through.
        async with database.sessionmaker() as session:
            await session.scalar(select(func.count()).select_from(kit.ledger))
            answer = await register.post("http://register/v1/person/verify", json={})
            assert answer.json() == {"result": "match"}
            await kit.record(session, "written after the register answered")
            await session.commit()


async def test_a_client_built_elsewhere_gets_the_same_guard_once(
    database: Database, kit: Kit
) -> None:
    # A deployment's client factory (its own TLS settings, say) builds a plain httpx client.
    built = httpx.AsyncClient(transport=httpx.ASGITransport(app=_outside()))
    async with guard_transactions(
        guard_transactions(built, caller="sharing", system="provider gongan"),
        caller="sharing",
        system="provider gongan",
    ) as department:
        assert len(department.event_hooks["request"]) == 1
        async with database.sessionmaker() as session:
            await session.execute(select(func.pg_advisory_xact_lock(7402)))
            with pytest.raises(TransactionHeldAcrossCall, match="sharing → provider gongan POST"):
                await department.post("http://department/v1/person/verify", json={})
            await session.rollback()
        assert (await department.post("http://department/v1/person/verify")).status_code == 200


async def test_the_folder_object_store_refuses_a_call_inside_an_open_transaction(
    database: Database, tmp_path: Path
) -> None:
    # Development's and the tests' stand-in for S3 runs the same guard, so code that holds a
    # transaction across a store call fails here and not first in production.
    store = LocalObjectStore(tmp_path, caller="sharing")
    async with database.sessionmaker() as session:
        await session.execute(select(func.pg_advisory_xact_lock(7403)))
        with pytest.raises(TransactionHeldAcrossCall, match="sharing → object store PUT a/b"):
            await store.put("a/b", b"x", content_type="text/plain")
        with pytest.raises(TransactionHeldAcrossCall, match="sharing → object store GET a/b"):
            await store.get("a/b")
        await session.rollback()
    await store.put("a/b", b"x", content_type="text/plain")
    assert await store.get("a/b") == b"x"


async def test_the_s3_object_store_refuses_a_call_inside_an_open_transaction(
    database: Database,
) -> None:
    # Nothing listens at the endpoint: the guard stops each call before it is sent (a call
    # that went out would fail as ObjectStoreError, as the last one does).
    store = S3ObjectStore(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        bucket="materials",
        region="us-east-1",
        access_key="a",
        secret_key="b",
        timeout_s=2.0,
        retries=0,
        caller="intake",
    )
    try:
        async with database.sessionmaker() as session:
            await session.execute(select(func.pg_advisory_xact_lock(7404)))
            with pytest.raises(TransactionHeldAcrossCall, match="intake → object store PUT a/b"):
                await store.put("a/b", b"x", content_type="text/plain")
            with pytest.raises(TransactionHeldAcrossCall, match="intake → object store GET a/b"):
                await store.get("a/b")
            with pytest.raises(TransactionHeldAcrossCall, match="object store PRESIGN a/b"):
                await store.download_url("a/b", expires_in=timedelta(minutes=1))
            await session.rollback()
        with pytest.raises(ObjectStoreError):
            await store.get("a/b")
    finally:
        await store.close()


async def test_the_shared_access_token_is_fetched_once_and_under_no_transaction(
    database: Database, settings: Settings
) -> None:
    schema = f"wechat_{uuid.uuid4().hex[:10]}"
    metadata = MetaData(schema=schema)
    table = define_wechat_token_table(metadata)
    async with database.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await connection.run_sync(metadata.create_all)

    def store() -> PostgresTokenStore:
        return PostgresTokenStore(
            database,
            table=table,
            appid="wx-guard",
            cipher=FieldCipher.from_settings(settings),
            context="test.wechat_token",
        )

    fetches: list[bool] = []
    fetching = asyncio.Event()

    async def fetch() -> StoredToken:
        # What WeChat is asked inside: the kit's WeChat client would refuse a held transaction.
        fetches.append(holds_transaction())
        fetching.set()
        await asyncio.sleep(0.3)
        return StoredToken(
            token=f"token-{len(fetches)}", expires_at=datetime.now(UTC) + timedelta(hours=1)
        )

    # Two workers at once: the second waits for the first one's token instead of fetching.
    first = asyncio.create_task(store().refresh(fetch, replacing=None))
    await fetching.wait()
    second = asyncio.create_task(store().refresh(fetch, replacing=None))
    tokens = await asyncio.gather(first, second)
    assert [t.token for t in tokens] == ["token-1", "token-1"]
    assert fetches == [False]

    # A fetch that fails leaves the lock free and the stored token as it was.
    async def failing() -> StoredToken:
        raise RuntimeError("WeChat did not answer")

    with pytest.raises(RuntimeError):
        await store().refresh(failing, replacing="token-1")
    replaced = await asyncio.wait_for(store().refresh(fetch, replacing="token-1"), timeout=5)
    assert replaced.token == "token-2"
    loaded = await store().load()
    assert loaded is not None and loaded.token == "token-2"
    # No session lock left behind on a pooled connection: another connection takes it at once.
    key = func.hashtext(f"wechat-token:{table.fullname}:wx-guard")
    async with database.engine.connect() as other:
        assert await other.scalar(select(func.pg_try_advisory_lock(key))) is True
        await other.scalar(select(func.pg_advisory_unlock(key)))
        await other.rollback()
