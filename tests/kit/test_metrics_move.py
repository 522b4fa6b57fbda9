"""The operational metrics move when work happens: the relay's publish counters and latency,
the consumer handler's duration, the database pool's gauges and the outbound HTTP calls. Real
database and broker; the callee of the HTTP calls is a real local server."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from tests.kit.support import eventually, make_kit
from tests.serving import serve_asgi
from wangban.db import Database
from wangban.http import service_client
from wangban.observability import Metrics
from wangban.settings import Settings


def _value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


async def test_publishing_and_handling_move_the_producer_and_handler_metrics(
    settings: Settings, database: Database
) -> None:
    kit = make_kit("moving")
    await kit.create(database)
    async with database.sessionmaker() as session, session.begin():
        for n in range(3):
            await kit.record(session, f"note-{n}")
    assert _value(kit.metrics, "wangban_outbox_publish_duration_seconds_count") == 0
    relay = kit.relay(settings, database)
    try:
        while await relay.relay_once():
            pass
    finally:
        await relay.stop()
    assert _value(kit.metrics, "wangban_outbox_published_total") == 3
    assert _value(kit.metrics, "wangban_outbox_publish_duration_seconds_count") >= 1
    assert _value(kit.metrics, "wangban_outbox_publish_errors_total") == 0

    group = f"moving-{uuid.uuid4().hex[:6]}"
    runner = kit.runner(settings, database, kit.consumer(group))
    labels = {"consumer": group, "type": kit.event.event_type}

    async def handled() -> bool:
        return (
            _value(kit.metrics, "wangban_events_consumed_total", {**labels, "outcome": "handled"})
            == 3
        )

    runner.start()
    try:
        await eventually(handled)
    finally:
        await runner.stop()
    # Every handled event was timed (one at a time or as its share of a batch).
    assert _value(kit.metrics, "wangban_consumer_handler_duration_seconds_count", labels) == 3
    assert _value(kit.metrics, "wangban_consumer_handler_duration_seconds_sum", labels) > 0


async def test_the_pool_gauges_follow_connections_checked_out(settings: Settings) -> None:
    assert settings.database_url is not None
    database = Database(settings.database_url, pool_size=2, max_overflow=1)
    metrics = Metrics("pool-test")
    try:
        # Not exported before there is an engine to read.
        assert metrics.registry.get_sample_value("wangban_db_pool_size") is None
        metrics.watch_pool(database.engine)
        assert _value(metrics, "wangban_db_pool_size") == 2
        assert _value(metrics, "wangban_db_pool_max") == 3
        assert _value(metrics, "wangban_db_pool_checked_out") == 0
        async with database.engine.connect() as first, database.engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            assert _value(metrics, "wangban_db_pool_checked_out") == 2
            assert _value(metrics, "wangban_db_pool_overflow") == 0
            async with database.engine.connect() as third:
                await third.execute(text("SELECT 1"))
                # All three the pool may hand out: exhausted, as the alert reads it.
                assert _value(metrics, "wangban_db_pool_checked_out") == 3
                assert _value(metrics, "wangban_db_pool_overflow") == 1
        await asyncio.sleep(0)
        assert _value(metrics, "wangban_db_pool_checked_out") == 0
    finally:
        await database.dispose()


async def test_a_checkout_that_waits_is_timed_and_one_that_gives_up_is_counted(
    settings: Settings,
) -> None:
    assert settings.database_url is not None
    # One connection, and a checkout that waits for it longer than any test would.
    database = Database(settings.database_url, pool_size=1, max_overflow=0, pool_timeout_s=60)
    impatient = Database(settings.database_url, pool_size=1, max_overflow=0, pool_timeout_s=0.2)
    metrics, impatient_metrics = Metrics("pool-wait"), Metrics("pool-timeout")
    metrics.watch_pool(database.engine)
    impatient_metrics.watch_pool(impatient.engine)
    held_s = 0.3
    try:
        got_it = asyncio.Event()

        async def second_unit_of_work() -> None:
            async with database.engine.connect() as conn:
                got_it.set()
                await conn.execute(text("SELECT 1"))

        async with database.engine.connect() as first:
            await first.execute(text("SELECT 1"))
            waiting = asyncio.create_task(second_unit_of_work())
            await asyncio.sleep(held_s)
            assert not got_it.is_set()  # it is waiting for the one connection
        await waiting
        # Both checkouts timed; the second waited at least as long as the first held on.
        assert _value(metrics, "wangban_db_pool_checkout_seconds_count") == 2
        assert _value(metrics, "wangban_db_pool_checkout_seconds_sum") >= held_s
        assert _value(metrics, "wangban_db_pool_checkout_seconds_bucket", {"le": "0.1"}) <= 1
        assert _value(metrics, "wangban_db_pool_timeouts_total") == 0

        async with impatient.engine.connect() as holder:
            await holder.execute(text("SELECT 1"))
            with pytest.raises(sa_exc.TimeoutError):
                async with impatient.engine.connect():
                    pass
        assert _value(impatient_metrics, "wangban_db_pool_timeouts_total") == 1
        assert _value(impatient_metrics, "wangban_db_pool_checkout_seconds_count") == 2

        # The engine's pool, made anew by dispose(), is timed as well.
        await database.dispose()
        async with database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert _value(metrics, "wangban_db_pool_checkout_seconds_count") == 3
    finally:
        await database.dispose()
        await impatient.dispose()


async def test_outbound_calls_are_counted_by_target_method_and_status_class(
    settings: Settings,
) -> None:
    callee = FastAPI()

    @callee.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        if item_id == "missing":
            raise HTTPException(status_code=404)
        return {"id": item_id}

    caller = f"caller-{uuid.uuid4().hex[:6]}"
    metrics = Metrics(caller)  # reads the process's outbound counts of this caller
    async with serve_asgi(callee) as url:
        own = settings.model_copy(update={"catalog_url": url})
        async with service_client(own, "catalog", caller=caller) as client:
            for item_id in ("1", "2", "missing"):
                await client.get(f"/items/{item_id}")
    async with service_client(own, "catalog", caller=caller) as client:
        # The server is gone: no answer, counted as an error (after the client's retries).
        try:
            await client.get("/items/3")
        except httpx.HTTPError:
            pass
        else:
            raise AssertionError("a stopped server answered")

    def calls(status_class: str) -> float:
        return _value(
            metrics,
            "wangban_http_client_requests_total",
            {"target": "catalog", "method": "GET", "status_class": status_class},
        )

    assert (calls("2xx"), calls("4xx"), calls("error")) == (2, 1, 1)
    assert (
        _value(
            metrics,
            "wangban_http_client_request_duration_seconds_count",
            {"target": "catalog", "method": "GET"},
        )
        == 4
    )
    body, _ = metrics.render()
    assert b"/items/1" not in body  # the target's name, never the path
