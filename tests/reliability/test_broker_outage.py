"""Scenario 2: the broker unreachable for 30 s while citizens keep applying.

A broker of its own for this test, reached only through a loopback proxy (the broker
advertises the proxy's address, so every producer, consumer and metadata refresh goes
through it). Cutting the proxy is, for the services, the broker going away: connections
reset, new ones refused. Submissions must still be accepted and stored (the outbox does
not need the broker); when the broker is back, the relays and consumers reconnect by
themselves and every application is decided — none lost, none decided twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tests.faults import Target, fault_proxy
from tests.gateway.support import running_gateway
from tests.infrastructure import Infrastructure
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
from wangban.db import Database
from wangban.embedded import EmbeddedKafka, free_port

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

OUTAGE_S = 30.0
BEFORE = 5
DURING_RATE_PER_S = 1.0


async def test_submissions_are_kept_through_a_broker_outage_and_all_decided_after(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    await publish_allowance(database)
    broker_port = free_port()
    async with fault_proxy(Target("127.0.0.1", broker_port)) as proxy:
        broker = EmbeddedKafka(
            broker_port, log_file=tmp_path / "broker.log", advertised_port=proxy.port
        )
        broker.start()
        try:
            async with running_gateway(
                infrastructure,
                database,
                background=True,
                kafka_bootstrap=proxy.address,
                # One applicant sends the whole stream: the per-user limit is not under test.
                gateway_submissions_per_minute_per_user=10_000,
            ) as gateway:
                api = gateway.client
                citizen = await sign_in_elder(api, gateway.settings, database)
                application = allowance_application()

                async def apply() -> str:
                    headers = {**citizen, "Idempotency-Key": str(uuid.uuid4())}
                    answer = await api.post(
                        "/api/v1/applications", json=application, headers=headers
                    )
                    assert answer.status_code == 201, answer.text
                    return str(answer.json()["id"])

                before = [await apply() for _ in range(BEFORE)]
                await proxy.cut()
                cut_at = time.monotonic()
                during: list[str] = []
                while time.monotonic() - cut_at < OUTAGE_S:
                    during.append(await apply())  # accepted and stored without the broker
                    await asyncio.sleep(1 / DURING_RATE_PER_S)
                # Nothing that needs the broker happened meanwhile: none of them decided.
                held = await outcome_of(database, during)
                assert all(o["decisions"] == 0 for o in held.values()), held
                await proxy.restore()
                restored_at = time.monotonic()

                applications = [*before, *during]

                async def all_delivered() -> bool:
                    outcome = await outcome_of(database, applications)
                    return all(delivered_and_told(o) for o in outcome.values())

                await eventually(
                    all_delivered,
                    timeout_s=120,
                    interval_s=0.5,
                    explain=lambda: where_they_are(database, applications),
                )
                caught_up_s = time.monotonic() - restored_at
                await asyncio.sleep(1.0)  # a second effect would show up by now
                outcome = await outcome_of(database, applications)
                duplicates = {
                    a: o
                    for a, o in outcome.items()
                    if (o["decisions"], o["certificates"], o["notifications_per_kind"]) != (1, 1, 1)
                }
                assert duplicates == {}
                assert await dead_letters_about(database, applications) == []
                assert proxy.connections_reset > 0  # live broker connections were cut
                assert len(during) >= OUTAGE_S * DURING_RATE_PER_S * 0.5
                assert caught_up_s < 120
                report(
                    "broker_outage",
                    applications=len(applications),
                    accepted_during_the_outage=len(during),
                    outage_s=OUTAGE_S,
                    broker_connections_reset=proxy.connections_reset,
                    all_delivered_s_after_recovery=round(caught_up_s, 1),
                    losses=0,
                    duplicates=len(duplicates),
                    dead_letters_added=0,
                )
        finally:
            broker.stop()
