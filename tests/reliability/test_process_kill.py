"""Scenario 1: a service process killed (SIGKILL) in the middle of a stream of submissions.

The six services run as processes, exactly as containers run them. While a citizen's
submissions stream in through the gateway, intake, approval, sharing and notify are each
killed without warning — no shutdown hook, transactions and in-flight requests cut short —
and started again. The mini-program does what it is told: on a 5xx or a broken connection it
sends the same submission again with the same ``Idempotency-Key``. Afterwards every
application must be delivered exactly once: one decision, one certificate, one notification
of each kind, and nothing dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from bench.auto_approval import item_version_everywhere
from tests.infrastructure import Infrastructure
from tests.reliability.support import (
    ITEM_CODE,
    allowance_application,
    dead_letters_about,
    delivered_and_told,
    eventually,
    outcome_of,
    platform_processes,
    publish_allowance,
    report,
    sign_in_elder,
    where_they_are,
)
from wangban.db import Database
from wangban.processes import ServiceProcesses
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

APPLICATIONS = 40
RATE_PER_S = 4.0
KILLS = (("approval", 1.5), ("sharing", 3.5), ("intake", 5.5), ("notify", 7.5))
"""Which service dies when (seconds into the stream): each in the middle of work."""


async def test_every_application_is_final_exactly_once_when_services_are_killed(
    infrastructure: Infrastructure, database: Database, settings: Settings, tmp_path: Path
) -> None:
    await publish_allowance(database)
    async with platform_processes(infrastructure, tmp_path / "logs") as services:
        async with httpx.AsyncClient(base_url=services.urls["gateway"], timeout=10) as api:
            # The services learn the item from the catalog's events, not by asking it.
            await item_version_everywhere(database, timeout_s=60, code=ITEM_CODE)
            citizen = await sign_in_elder(api, settings, database)
            application = allowance_application()
            retries: list[str] = []

            async def submit(index: int) -> str:
                """One submission, sent again with the same key until it is accepted."""
                await asyncio.sleep(index / RATE_PER_S)
                headers = {**citizen, "Idempotency-Key": str(uuid.uuid4())}
                deadline = time.monotonic() + 90
                while True:
                    try:
                        answer = await api.post(
                            "/api/v1/applications", json=application, headers=headers
                        )
                        # 200: an earlier attempt was applied but its answer was lost when
                        # the process was killed between commit and response; the same key
                        # now returns that application.
                        if answer.status_code in (200, 201):
                            return str(answer.json()["id"])
                        assert answer.status_code in (502, 503, 504), answer.text
                        retries.append(f"HTTP {answer.status_code}")
                    except httpx.TransportError as exc:
                        retries.append(type(exc).__name__)
                    assert time.monotonic() < deadline, "submission never accepted"
                    await asyncio.sleep(0.5)

            async def kill_and_restart() -> list[str]:
                started = time.monotonic()
                killed = []
                for name, at in KILLS:
                    await asyncio.sleep(max(at - (time.monotonic() - started), 0))
                    services.kill(name)  # SIGKILL
                    killed.append(name)
                    services.start([name])
                    await services.wait_ready([name], timeout_s=90)
                return killed

            submitted, killed = await asyncio.gather(
                asyncio.gather(*(submit(i) for i in range(APPLICATIONS))), kill_and_restart()
            )
            applications = list(submitted)
            assert killed == [name for name, _ in KILLS]
            assert len(set(applications)) == APPLICATIONS  # no submission accepted twice

            async def all_delivered() -> bool:
                outcome = await outcome_of(database, applications)
                return all(delivered_and_told(o) for o in outcome.values())

            await eventually(
                all_delivered,
                timeout_s=180,
                interval_s=1.0,
                explain=lambda: where_they_are(database, applications),
            )
            await asyncio.sleep(2.0)  # a late second effect would show up by now
            outcome = await outcome_of(database, applications)
            duplicates = {
                a: o
                for a, o in outcome.items()
                if (o["decisions"], o["certificates"], o["notifications_per_kind"]) != (1, 1, 1)
            }
            assert duplicates == {}
            assert await dead_letters_about(database, applications) == []
            assert services.exited() == {}, _logs(services)
            report(
                "process_kill",
                applications=len(applications),
                sigkills=killed,
                submissions_retried_by_the_client=len(retries),
                retry_causes=sorted(set(retries)),
                delivered=sum(o["delivered"] for o in outcome.values()),
                losses=APPLICATIONS - sum(o["delivered"] for o in outcome.values()),
                duplicates=len(duplicates),
                dead_letters_added=0,
            )


def _logs(services: ServiceProcesses) -> str:
    return "\n".join(f"--- {n}\n{services.log_tail(n)}" for n in services.children)
