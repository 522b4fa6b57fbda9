"""The machine's ceiling: the least a service of ours does per write request, and nothing else.

    python -m bench.ceiling --port 8123          # WANGBAN_DATABASE_URL, WANGBAN_KAFKA_BOOTSTRAP

A bare FastAPI app under uvicorn (one worker, as ``wangban serve`` runs a service) with one
endpoint, ``POST /work``: one PostgreSQL INSERT (SQLAlchemy Core on asyncpg, the kit's engine
settings, into its own scratch table ``bench_ceiling.request``) and one Kafka send (aiokafka, the
kit's producer: acks=all, to the scratch topic ``bench.ceiling``), then 201. No auth, no
outbox, no events, no middleware: what is left when the platform's work is taken away.
``bench.platform_load`` drives it with the same load generator at the same rates as the
platform, and reports the platform's figures as ratios to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from sqlalchemy import text

from wangban.db import Database
from wangban.events import TopicSpec
from wangban.kafka import ensure_topics, make_producer, stop_quietly
from wangban.settings import Settings

SCHEMA = "bench_ceiling"
TOPIC = "bench.ceiling"
PARTITIONS = 6


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.from_settings(settings)
        async with database.engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            await conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.request ("
                    "id uuid PRIMARY KEY, created_at timestamptz NOT NULL, body jsonb NOT NULL)"
                )
            )
        await ensure_topics(
            settings, [TopicSpec(TOPIC, PARTITIONS, "bench.ceiling scratch", "request id")]
        )
        producer = make_producer(settings, client_id="bench-ceiling")
        await producer.start()
        app.state.database = database
        app.state.producer = producer
        try:
            yield
        finally:
            await stop_quietly(producer)
            await database.dispose()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    insert = text(
        f"INSERT INTO {SCHEMA}.request (id, created_at, body) "
        "VALUES (:id, :created_at, CAST(:body AS jsonb))"
    )

    @app.post("/work", status_code=201)
    async def work(request: Request) -> Response:
        body: Any = await request.json()
        request_id = uuid.uuid4()
        raw = json.dumps(body, ensure_ascii=False)
        database: Database = request.app.state.database
        async with database.engine.begin() as conn:
            await conn.execute(
                insert, {"id": request_id, "created_at": datetime.now(UTC), "body": raw}
            )
        await request.app.state.producer.send_and_wait(
            TOPIC, raw.encode(), key=str(request_id).encode()
        )
        return Response(
            content=json.dumps({"id": str(request_id)}),
            status_code=201,
            media_type="application/json",
        )

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


async def drop_scratch(settings: Settings) -> None:
    """Remove the scratch table's schema and topic (the run's parent calls this at the end)."""
    from aiokafka.admin import AIOKafkaAdminClient

    from wangban.kafka import common_config

    database = Database.from_settings(settings)
    try:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    finally:
        await database.dispose()
    admin = AIOKafkaAdminClient(**common_config(settings, client_id="bench-ceiling-admin"))
    await admin.start()
    try:
        if TOPIC in set(await admin.list_topics()):
            await admin.delete_topics([TOPIC])
    finally:
        await admin.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
