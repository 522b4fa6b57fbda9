"""Scenario: a rolling restart (a release, or Kubernetes moving pods) while applications flow.

The six services run as processes, exactly as containers run them. While a citizen's 秒批
submissions stream in through the gateway, every service in turn is stopped the way an
orchestrator stops it — SIGTERM, then wait for it to exit — and started again, one at a time,
the next only once the last answers ``/readyz``. Each must stop by itself within the grace
period (no SIGKILL needed), and the mini-program does what it is told: on a 5xx or a broken
connection it sends the same submission again with the same ``Idempotency-Key``. Afterwards
every application must be delivered exactly once — one decision, one certificate, one
notification of each kind — nothing dead-lettered, nothing stuck on the way.
"""

from __future__ import annotations

import asyncio
import signal
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
from wangban.settings import SERVICE_NAMES, Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

RATE_PER_S = 2.0
AT_LEAST = 24
AT_MOST = 90
"""Submissions go on for as long as the restarts do (at least ``AT_LEAST``, a bound in case
the restarts hang), so that every service is restarted while applications flow through it."""


async def test_every_application_is_final_exactly_once_across_a_rolling_restart(
    infrastructure: Infrastructure, database: Database, settings: Settings, tmp_path: Path
) -> None:
    await publish_allowance(database)
    async with platform_processes(infrastructure, tmp_path / "logs") as services:
        async with httpx.AsyncClient(base_url=services.urls["gateway"], timeout=10) as api:
            await item_version_everywhere(database, timeout_s=60, code=ITEM_CODE)
            citizen = await sign_in_elder(api, settings, database)
            application = allowance_application()
            retries: list[str] = []
            restarted: list[tuple[str, int | None]] = []
            restarts_done = asyncio.Event()
            restart_s: dict[str, float] = {}

            async def submit(index: int) -> str:
                """One submission, sent again with the same key until it is accepted, backing
                off as a well-behaved client does (0.5 s, doubling, at most 4 s apart)."""
                headers = {**citizen, "Idempotency-Key": str(uuid.uuid4())}
                deadline = time.monotonic() + 120
                backoff, last = 0.5, ""
                while True:
                    try:
                        answer = await api.post(
                            "/api/v1/applications", json=application, headers=headers
                        )
                        # 200: an earlier attempt was applied but its answer was lost on
                        # the way (a restart between commit and response); the same key
                        # now returns that application.
                        if answer.status_code in (200, 201):
                            if answer.status_code == 200:
                                retries.append("replayed")
                            return str(answer.json()["id"])
                        assert answer.status_code in (502, 503, 504), answer.text
                        last = f"HTTP {answer.status_code} {answer.text[:300]}"
                        retries.append(f"HTTP {answer.status_code}")
                    except httpx.TransportError as exc:
                        last = repr(exc)
                        retries.append(type(exc).__name__)
                    assert time.monotonic() < deadline, f"submission {index} never accepted: {last}"
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 4.0)

            async def stream() -> list[str]:
                pending: list[asyncio.Task[str]] = []
                while len(pending) < AT_MOST and (
                    len(pending) < AT_LEAST or not restarts_done.is_set()
                ):
                    pending.append(asyncio.create_task(submit(len(pending))))
                    await asyncio.sleep(1 / RATE_PER_S)
                return list(await asyncio.gather(*pending))

            async def roll() -> None:
                try:
                    await asyncio.sleep(2.0)  # applications are in flight everywhere
                    for name in SERVICE_NAMES:
                        began = time.monotonic()
                        await asyncio.to_thread(services.kill, name, signal.SIGTERM)
                        restarted.append((name, services.children[name].returncode))
                        services.start([name])
                        await services.wait_ready([name], timeout_s=90)
                        restart_s[name] = round(time.monotonic() - began, 1)
                finally:
                    restarts_done.set()

            applications, _ = await asyncio.gather(stream(), roll())
            # Stopped the way an orchestrator stops a pod, each exited by itself within the
            # grace period (uvicorn, its shutdown done, raises the SIGTERM it caught again: -15).
            clean = (0, -signal.SIGTERM)
            assert [n for n, code in restarted if code in clean] == list(SERVICE_NAMES), (
                restarted,
                _logs(services),
            )
            assert len(set(applications)) == len(applications)  # none accepted twice

            async def all_delivered() -> bool:
                outcome = await outcome_of(database, applications)
                return all(delivered_and_told(o) for o in outcome.values())

            await eventually(
                all_delivered,
                timeout_s=120,
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
                "rolling_restart",
                applications=len(applications),
                restarted=[name for name, _ in restarted],
                seconds_to_ready_again=restart_s,
                submissions_retried_by_the_client=len(retries),
                retry_causes=sorted(set(retries)),
                delivered=sum(o["delivered"] for o in outcome.values()),
                duplicates=len(duplicates),
                dead_letters_added=0,
            )


def _logs(services: ServiceProcesses) -> str:
    return "\n".join(f"--- {n}\n{services.log_tail(n)}" for n in services.children)
