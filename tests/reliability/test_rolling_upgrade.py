"""Scenario: a rolling upgrade whose new release adds a field to the events it publishes.

Within a type's version our events change additively (docs/partners.md): a release may add an
optional field, and the services that read it are upgraded later, or never. The 秒批 path runs
for real (catalog, intake, approval, sharing and notify with their relays and consumers, a real
broker, real PostgreSQL) while a citizen's applications stream in. Midway, the approval service
is replaced — stopped as an orchestrator stops it, then started again as the next release —
and that release's contract for every decision event has one more field (registered for the
same type in its own registry, as its ``contracts/approval/v1.py`` would have it). Intake,
sharing and notify keep today's code. Every application must still be decided, certified,
told and delivered exactly once, with nothing dead-lettered; and the new field must really
have been on the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text

import contracts.approval.v1 as approval_contract
from approval_service import cases
from tests.infrastructure import Infrastructure, make_settings
from tests.reliability.support import (
    Platform,
    dead_letters_about,
    eventually,
    outcome_of,
    persona_who,
    publish_allowance,
    ready_for_applications,
    report,
    where_they_are,
)
from tests.serving import serve_asgi
from wangban.app import create_service_app
from wangban.consumer import ConsumerRunner, wait_until_assigned
from wangban.db import Database
from wangban.events import Event, EventRegistry
from wangban.services import load_spec
from wangban.settings import Settings

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

BEFORE, DURING, AFTER = 4, 4, 4
"""Applications submitted before the upgrade, while approval is being replaced, and after."""
ADDED_FIELD = "decision_channel"


def next_release_of_approval_events() -> dict[str, type[Event]]:
    """The approval contract one release later: every event it publishes has one more optional
    field, registered for the same type and topic (a registry of the newer code's own)."""
    registry = EventRegistry()
    upgraded: dict[str, type[Event]] = {}
    for name in dir(approval_contract):
        today = getattr(approval_contract, name)
        if not (isinstance(today, type) and issubclass(today, Event) and today is not Event):
            continue
        spec = today.topic_spec
        topic = registry.topic(
            spec.name,
            partitions=spec.partitions,
            description=spec.description,
            key_description=spec.key_description,
        )
        namespace: dict[str, Any] = {
            "__module__": __name__,
            "__doc__": f"{today.__doc__}\n\nNext release: says through which channel.",
            "__annotations__": {ADDED_FIELD: str},
            ADDED_FIELD: "window-less",
        }
        newer = type(today.__name__, (today,), namespace)
        upgraded[name] = registry.event(type=today.event_type, topic=topic, key=today.key_field)(
            newer
        )
    return upgraded


@asynccontextmanager
async def platform_with_replaceable_approval(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> AsyncIterator[tuple[Platform, Any]]:
    """The 秒批 path in process (as ``running_platform``), with approval in an exit stack of its
    own so that it can be stopped and a new instance started while the rest runs on."""
    version_id, content = await publish_allowance(database)
    base = make_settings(infrastructure, data_dir=tmp_path)
    async with AsyncExitStack() as stack:
        sharing = create_service_app(load_spec("sharing"), base, background=True)
        await stack.enter_async_context(sharing.router.lifespan_context(sharing))
        sharing_url = await stack.enter_async_context(serve_asgi(sharing))
        catalog = create_service_app(
            load_spec("catalog"),
            make_settings(infrastructure, data_dir=tmp_path, sharing_url=sharing_url),
            background=True,
        )
        await stack.enter_async_context(catalog.router.lifespan_context(catalog))
        catalog_url = await stack.enter_async_context(serve_asgi(catalog))
        settings = make_settings(
            infrastructure, data_dir=tmp_path, sharing_url=sharing_url, catalog_url=catalog_url
        )
        apps: dict[str, FastAPI] = {"sharing": sharing, "catalog": catalog}
        for name in ("intake", "notify"):
            apps[name] = create_service_app(load_spec(name), settings, background=True)
            await stack.enter_async_context(apps[name].router.lifespan_context(apps[name]))
        approval_stack = await stack.enter_async_context(AsyncExitStack())

        async def start_approval() -> list[ConsumerRunner]:
            app = create_service_app(load_spec("approval"), settings, background=True)
            await approval_stack.enter_async_context(app.router.lifespan_context(app))
            apps["approval"] = app
            runners: list[ConsumerRunner] = app.state.runtime.runners
            await wait_until_assigned(runners, timeout_s=45)
            return runners

        await start_approval()
        runners = [r for app in apps.values() for r in app.state.runtime.runners]
        await wait_until_assigned(runners, timeout_s=45)
        intake, notify = await ready_for_applications(
            stack, database, settings, apps, version_id=version_id
        )

        class Approval:
            async def stop(self) -> None:
                """SIGTERM's path: the app's shutdown (consumers leave the group, the relay
                stops)."""
                await approval_stack.aclose()

            async def start(self) -> None:
                await start_approval()

        yield (
            Platform(settings, database, apps, runners, intake, notify, version_id, content),
            Approval(),
        )


async def events_with_added_field(
    database: Database, application_ids: list[str]
) -> tuple[int, int]:
    """Of the events approval published about these applications: how many carry the added
    field, and how many there are."""
    async with database.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE envelope->'data' ? :field), count(*)"
                " FROM approval.outbox WHERE envelope->'data'->>'application_id' = ANY(:ids)"
            ),
            {"ids": application_ids, "field": ADDED_FIELD},
        )
        carried, published = result.one()
        return int(carried), int(published)


async def test_an_upgraded_approval_adding_a_field_dead_letters_nothing(
    infrastructure: Infrastructure,
    database: Database,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.monotonic()
    elder = persona_who("pass")
    async with platform_with_replaceable_approval(infrastructure, database, tmp_path) as (
        platform,
        approval,
    ):

        async def stream(count: int) -> list[str]:
            ids = []
            for _ in range(count):
                ids.append((await platform.apply(elder))[1])
                await asyncio.sleep(0.25)
            return ids

        before = await stream(BEFORE)

        async def upgrade() -> None:
            await asyncio.sleep(0.3)  # decisions are in flight when approval goes
            await approval.stop()
            # The next release's code: what approval publishes is its newer contract.
            for name, newer in next_release_of_approval_events().items():
                monkeypatch.setattr(cases, name, newer)
            await approval.start()

        during, _ = await asyncio.gather(stream(DURING), upgrade())
        after = await stream(AFTER)
        applications = before + during + after

        async def all_delivered() -> bool:
            outcome = await outcome_of(database, applications)
            return all(o["delivered"] == 1 for o in outcome.values())

        await eventually(
            all_delivered,
            timeout_s=90,
            interval_s=0.5,
            explain=lambda: where_they_are(database, applications),
        )
        await asyncio.sleep(1.0)  # a late second effect or dead letter would show up by now
        outcome = await outcome_of(database, applications)
        carried, published_after = await events_with_added_field(database, after)

    assert len(set(applications)) == BEFORE + DURING + AFTER
    assert {
        a: o
        for a, o in outcome.items()
        if (o["decisions"], o["certificates"], o["notifications_per_kind"]) != (1, 1, 1)
    } == {}
    # Applications submitted after the upgrade were decided by the next release only: every
    # event approval published about them carries the field.
    assert carried == published_after > 0
    assert await dead_letters_about(database, applications) == []
    report(
        "rolling_upgrade",
        applications=len(applications),
        upgraded="approval",
        added_field=ADDED_FIELD,
        events_with_added_field=carried,
        delivered=sum(o["delivered"] for o in outcome.values()),
        dead_letters_added=0,
        seconds=round(time.monotonic() - started, 1),
    )
