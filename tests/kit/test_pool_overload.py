"""Overload: when no pooled connection comes free in time, a request gets 503 with Retry-After
(retry later) quickly, not a 500 after SQLAlchemy's 30 s default — on a real PostgreSQL pool."""

from __future__ import annotations

import time

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from wangban.db import Database, UnitOfWork
from wangban.errors import install_problem_handlers


async def test_a_request_that_finds_the_pool_exhausted_is_503_and_changes_nothing(
    database: Database,
) -> None:
    url = database.url.render_as_string(hide_password=False)
    one_connection = Database(url, pool_size=1, max_overflow=0, pool_timeout_s=0.3)
    app = FastAPI()
    install_problem_handlers(app)
    app.state.database = one_connection

    @app.get("/count")
    async def count(session: UnitOfWork) -> dict[str, int]:
        return {"one": int((await session.execute(text("SELECT 1"))).scalar_one())}

    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            async with one_connection.engine.connect() as busy:
                await busy.execute(text("SELECT 1"))  # the only connection, held
                started = time.monotonic()
                response = await client.get("/count")
                waited = time.monotonic() - started
            assert response.status_code == 503
            assert response.headers["content-type"].startswith("application/problem+json")
            assert int(response.headers["retry-after"]) > 0
            assert response.json()["detail"] == "服务暂时不可用，请稍后重试"
            assert waited < 5  # the pool timeout, not 30 s
            # Once the connection is back, the same request works.
            assert (await client.get("/count")).json() == {"one": 1}
    finally:
        await one_connection.dispose()
