"""The ops console's health table: ``GET /api/v1/staff/ops/status`` asks every service with
events for its ``/ops/status`` at once, answers for the gateway itself, and shows a service that
does not answer as unreachable instead of failing, on the real services, database and broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.api.ops import OPS_SERVICES
from gateway.upstream import Upstreams
from tests.gateway.dead_letters import dead_letter_of, send_unreadable_withdrawal
from tests.gateway.support import running_gateway
from tests.infrastructure import Infrastructure, make_settings
from tests.kit.support import eventually
from wangban.db import Database
from wangban.embedded import free_port

STATUS = "/api/v1/staff/ops/status"


async def _status(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    answer = await client.get(STATUS, headers=headers)
    assert answer.status_code == 200, answer.text
    return {entry["service"]: entry for entry in answer.json()["services"]}


async def test_ops_sees_every_service_its_consumers_and_a_new_dead_letter(
    infrastructure: Infrastructure, database: Database
) -> None:
    async with running_gateway(infrastructure, database, background=True) as gateway:
        ops = gateway.staff("ops")
        client = gateway.client

        async def all_up() -> bool:
            services = await _status(client, ops)
            return all(entry["state"] == "up" for entry in services.values())

        # Up once every broker watch has found the broker and every consumer has caught up.
        await eventually(all_up, timeout_s=90, interval_s=0.5)
        before = await _status(client, ops)
        assert list(before) == ["gateway", *OPS_SERVICES]
        own = before["gateway"]["status"]
        # The gateway: its database, and no broker, consumer, outbox or dead letter of its own.
        assert own["database"]["state"] == "migrated"
        assert own["database"]["revision"] == own["database"]["head"]
        assert (own["broker"], own["consumers"], own["outbox_backlog"], own["dead_letters"]) == (
            None,
            [],
            None,
            None,
        )
        intake = before["intake"]["status"]
        assert intake["broker"]["state"] == "ok" and intake["broker"]["checked_at"]
        [consumer] = intake["consumers"]
        assert consumer["group"] == "intake" and consumer["caught_up"] and consumer["assigned"]
        assert "wangban.catalog.items" in consumer["topics"]
        # Lag per partition, as its last poll left it, and the total is theirs.
        assert consumer["partitions"], consumer
        assert consumer["lag"] == sum(p["lag"] for p in consumer["partitions"])
        assert {p["topic"] for p in consumer["partitions"]} <= set(consumer["topics"])
        for name in OPS_SERVICES:
            status = before[name]["status"]
            assert status["service"] == name
            assert status["outbox_backlog"] >= 0 and status["dead_letters"] >= 0

        event_id = await send_unreadable_withdrawal(database)

        async def dead_lettered() -> bool:
            return await dead_letter_of(database, event_id) is not None

        await eventually(dead_lettered, timeout_s=60, interval_s=0.3)
        after = await _status(client, ops)
        assert after["intake"]["status"]["dead_letters"] == intake["dead_letters"] + 1
        for name in ("approval", "sharing"):  # they pass that type over
            assert after[name]["status"]["dead_letters"] == before[name]["status"]["dead_letters"]
        # A dead letter makes no service less healthy: it waits for an operator.
        assert after["intake"]["state"] == "up"

        # Only ops: other staff are refused here, not shown a table of refusals; citizens too.
        for who in (gateway.staff("reviewer", department="东莞市民政局"), gateway.staff("auditor")):
            refused = await client.get(STATUS, headers=who)
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
        citizen = await gateway.citizen(assurance="wechat")
        assert (await client.get(STATUS, headers=citizen)).status_code == 403
        assert (await client.get(STATUS)).status_code == 401


@asynccontextmanager
async def silent_service() -> AsyncIterator[str]:
    """A port that takes connections and never answers (a service hung in a long pause)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the gateway gives up and closes

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_service_that_does_not_answer_is_shown_unreachable_and_the_rest_answer(
    infrastructure: Infrastructure, database: Database
) -> None:
    async with (
        running_gateway(infrastructure, database) as gateway,
        silent_service() as silent_url,
    ):
        settings = make_settings(
            infrastructure,
            approval_url=silent_url,
            notify_url=f"http://127.0.0.1:{free_port()}",  # nothing listens: refused
        )
        await gateway.app.state.upstreams.close()
        gateway.app.state.upstreams = Upstreams(
            settings,
            transports={
                name: httpx.ASGITransport(app=app)
                for name, app in gateway.services.items()
                if name not in ("approval", "notify")
            },
        )
        services = await _status(gateway.client, gateway.staff("ops"))
    assert list(services) == ["gateway", *OPS_SERVICES]
    assert services["approval"] == {
        "service": "approval",
        "state": "unreachable",
        "status": None,
        "unreachable": "timeout",
    }
    assert (services["notify"]["state"], services["notify"]["unreachable"]) == (
        "unreachable",
        "unavailable",
    )
    for name in ("gateway", "catalog", "intake", "sharing"):
        # HTTP-only processes here: no broker or consumers of their own, and up.
        assert services[name]["state"] == "up", services[name]
        assert services[name]["status"]["broker"] is None
