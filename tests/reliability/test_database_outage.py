"""Scenario 3: PostgreSQL unreachable for a few seconds.

Every service reaches the database through a loopback proxy that the test cuts: open
connections are reset, new ones refused. Requests meanwhile must fail as 503 problem+json with
``Retry-After`` (a client can retry; nothing was half-done), never as 500; events in flight
must wait rather than become dead letters; and once the database is back, everything recovers
by itself — no restart, nothing lost, nothing applied twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.faults import Target, fault_proxy, postgres_target, through_proxy
from tests.gateway.support import running_gateway
from tests.infrastructure import Infrastructure
from tests.kit.support import Kit, make_kit
from tests.reliability.support import (
    allowance_application,
    dead_letters_about,
    delivered_and_told,
    eventually,
    outcome_of,
    publish_allowance,
    report,
    sign_in_elder,
    where_they_are,
)
from tests.serving import serve_asgi
from wangban.db import Database
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

OUTAGE_S = 4.0


@pytest.mark.parametrize("unreachable", ["database", "called service"])
async def test_events_wait_out_an_outage_instead_of_becoming_dead_letters(
    settings: Settings, database: Database, unreachable: str
) -> None:
    """The kit alone: a consumer whose database, or the service its handler asks (as
    approval asks sharing), goes away while events arrive. With 3 attempts and a 200 ms
    backoff cap, a few seconds of outage must not use up the events' attempts."""
    kit: Kit = make_kit("outage")
    await kit.create(database)
    department = FastAPI()

    @department.get("/answer")
    async def answer() -> dict[str, str]:
        return {"answer": "checked"}

    direct_url = database.url.render_as_string(False)
    async with AsyncExitStack() as stack:
        if unreachable == "database":
            proxy = await stack.enter_async_context(fault_proxy(postgres_target(direct_url)))
            consumer_db = Database(through_proxy(direct_url, proxy))
            prepare = None
        else:
            url = await stack.enter_async_context(serve_asgi(department))
            host, port = url.removeprefix("http://").split(":")
            proxy = await stack.enter_async_context(fault_proxy(Target(host, int(port))))
            consumer_db = database
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://{proxy.address}", timeout=2)
            )

            async def ask(db: Database, *, event: Any, envelope: Any) -> str:
                found = (await client.get("/answer")).raise_for_status().json()
                return f"{event.note} {found['answer']}"

            prepare = ask
        relay = kit.relay(settings, database)
        runner = kit.runner(settings, consumer_db, kit.consumer("outage", prepare=prepare))
        relay.start()
        runner.start()
        try:
            async with database.sessionmaker() as session, session.begin():
                await kit.record(session, "before")
            await eventually(lambda: _applied(kit, database, 1), timeout_s=30)

            await proxy.cut()
            for i in range(5):  # the relay still reaches the database and the broker
                async with database.sessionmaker() as session, session.begin():
                    await kit.record(session, f"during-{i}")
            await asyncio.sleep(OUTAGE_S)
            assert len(await kit.effect_notes(database, "outage")) == 1
            await proxy.restore()

            await eventually(lambda: _applied(kit, database, 6), timeout_s=30)
            await asyncio.sleep(0.5)
            notes = await kit.effect_notes(database, "outage")
            assert len(notes) == len(set(notes)) == 6  # each exactly once
            assert await kit.count(database, kit.tables.dead_letter) == 0
            report(
                f"outage_of_the_{unreachable.replace(' ', '_')}",
                events=6,
                outage_s=OUTAGE_S,
                applied_once=len(notes),
                dead_letters=0,
            )
        finally:
            await runner.stop()
            await relay.stop()
            if consumer_db is not database:
                await consumer_db.dispose()


async def _applied(kit: Kit, database: Database, count: int) -> bool:
    return len(await kit.effect_notes(database, "outage")) >= count


async def test_the_platform_answers_503_during_a_database_outage_and_recovers_by_itself(
    infrastructure: Infrastructure, database: Database
) -> None:
    await publish_allowance(database)
    async with fault_proxy(postgres_target(infrastructure.database_url)) as proxy:
        async with running_gateway(
            infrastructure,
            database,
            background=True,
            database_url=through_proxy(infrastructure.database_url, proxy),
            database_pool_timeout_s=2.0,
        ) as gateway:
            api = gateway.client
            citizen = await sign_in_elder(api, gateway.settings, database)
            application = allowance_application()

            async def apply() -> Any:
                headers = {**citizen, "Idempotency-Key": str(uuid.uuid4())}
                return await api.post("/api/v1/applications", json=application, headers=headers)

            # Applications in flight when the database goes away.
            in_flight = []
            for _ in range(3):
                answer = await apply()
                assert answer.status_code == 201, answer.text
                in_flight.append(answer.json()["id"])
            await proxy.cut()
            cut_at = time.monotonic()

            during: list[tuple[str, int, str, str | None]] = []
            for method, path, headers in (
                ("GET", "/api/v1/items?q=公积金", {}),
                ("GET", "/api/v1/me", citizen),
                ("GET", f"/api/v1/applications/{in_flight[0]}", citizen),
            ):
                answer = await api.request(method, path, headers=headers)
                during.append(
                    (
                        path,
                        answer.status_code,
                        answer.headers.get("content-type", ""),
                        answer.headers.get("retry-after"),
                    )
                )
            refused = await apply()
            during.append(
                (
                    "POST /api/v1/applications",
                    refused.status_code,
                    refused.headers.get("content-type", ""),
                    refused.headers.get("retry-after"),
                )
            )
            for path, status, content_type, retry_after in during:
                assert status == 503, (path, status)
                assert content_type.startswith("application/problem+json"), path
                assert retry_after is not None and int(retry_after) > 0, path
            assert refused.json()["detail"]  # a readable reason for the mini-program
            # The home screen degrades instead of failing: the token is checked without the
            # database, and every part it could not load is named.
            home = await api.get("/api/v1/home", headers=citizen)
            assert home.status_code == 200, home.text
            assert home.json()["degraded"], home.json()
            await asyncio.sleep(max(OUTAGE_S - (time.monotonic() - cut_at), 0))
            await proxy.restore()

            # Recovers by itself: the next requests work, the refused submission can be sent
            # again, and everything in flight is decided exactly once.
            async def serving_again() -> bool:
                answer = await api.get("/api/v1/me", headers=citizen)
                return answer.status_code == 200

            recovery_s = await eventually(serving_again, timeout_s=20)
            after = await apply()
            assert after.status_code == 201, after.text
            applications = [*in_flight, after.json()["id"]]

            async def all_delivered() -> bool:
                outcome = await outcome_of(database, applications)
                return all(delivered_and_told(o) for o in outcome.values())

            await eventually(
                all_delivered,
                timeout_s=90,
                explain=lambda: where_they_are(database, applications),
            )
            await asyncio.sleep(1.0)  # anything applied twice would show up by now
            outcome = await outcome_of(database, applications)
            for application_id, counts in outcome.items():
                assert counts["decisions"] == 1, (application_id, counts)
                assert counts["certificates"] == 1, (application_id, counts)
                assert counts["notifications_per_kind"] == 1, (application_id, counts)
            assert await dead_letters_about(database, applications) == []
            assert proxy.connections_reset > 0  # the outage really cut live connections
            assert recovery_s < 20
            report(
                "database_outage",
                applications=len(applications),
                outage_s=OUTAGE_S,
                database_connections_reset=proxy.connections_reset,
                answers_during_the_outage=[f"{path}: {status}" for path, status, *_ in during],
                serving_again_s_after_recovery=round(recovery_s, 1),
                losses=0,
                duplicates=0,
                dead_letters_added=0,
            )
