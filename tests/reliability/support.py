"""What the reliability scenarios share: the 秒批 item published, its applicant signed in
through the gateway, and counting what every service holds for a set of applications."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import delete, text

from approval_service.models import ItemVersionCopy as ApprovalCopy
from catalog_service import repository as catalog_repository
from catalog_service import service as catalog
from catalog_service.schemas import ItemContent
from gateway.models import Account
from intake_service.models import ItemVersionCopy as IntakeCopy
from notify_service.template_versions import seed_defaults as seed_notify_templates
from sandbox import ELDERLY_ALLOWANCE, persona_for
from sharing_service.models import ItemVersionCopy as SharingCopy
from sharing_service.registry import seed_registry
from tests.grant_limits import (
    UNLIMITED_ALLOWANCE_CODE,
    grant_unlimited_allowance_access,
    unlimited_allowance_content,
)
from tests.infrastructure import Infrastructure, make_settings
from tests.serving import serve_asgi
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.consumer import ConsumerRunner, wait_until_assigned
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.embedded import free_port
from wangban.processes import ServiceProcesses, service_env
from wangban.services import load_spec
from wangban.settings import SERVICE_NAMES, Settings

ITEM_CODE = UNLIMITED_ALLOWANCE_CODE  # what these scenarios apply for: its unlimited copy
SERVICES_WITH_INBOX = ("catalog", "intake", "approval", "sharing", "notify", "gateway")


def elder() -> Any:
    """The sandbox persona whose records pass the allowance."""
    return persona_who("pass")


def allowance_content() -> dict[str, Any]:
    """The allowance without its once-per-person limit, under a code of its own: these
    scenarios submit it many times for the one persona who qualifies."""
    return unlimited_allowance_content()


async def publish_allowance(database: Database) -> tuple[str, dict[str, Any]]:
    """The demo registry and the allowance item, published once per run; its version id."""
    content = allowance_content()
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
    await grant_unlimited_allowance_access(database)
    async with database.sessionmaker() as session, session.begin():
        item = await catalog_repository.item_by_code(session, ITEM_CODE)
        if item is None or item.current_version_id is None:
            draft = await catalog.create_item_draft(
                session, content=ItemContent.model_validate(content)
            )
            version = await catalog.publish_version(session, version_id=draft.id)
            return version.id, content
        return item.current_version_id, content


async def sign_in_elder(
    client: httpx.AsyncClient, settings: Settings, database: Database
) -> dict[str, str]:
    """The elder, signed in and verified (实名 + 实人) through the development login; an
    earlier test's account for the same person steps aside (one account per person)."""
    person = elder()
    person_ref = BlindIndex.from_settings(settings).resident_id(person.id_number)
    async with database.sessionmaker() as session, session.begin():
        await session.execute(delete(Account).where(Account.person_ref == person_ref))
    answer = await client.post(
        "/api/v1/auth/dev",
        json={
            "openid": f"o-{uuid.uuid4().hex}",
            "assurance": "real_person",
            "name": person.name,
            "id_number": person.id_number,
        },
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def commitments(content: dict[str, Any]) -> list[dict[str, Any]]:
    """告知承诺 for every material of the item that allows it."""
    return [
        {"index": i, "commitment": True}
        for i, m in enumerate(content["materials"])
        if m["source"] == "commitment"
    ]


def allowance_application() -> dict[str, Any]:
    content = allowance_content()
    return {
        "item_code": ITEM_CODE,
        "form": elder().form(ELDERLY_ALLOWANCE, today=date.today()),
        "materials": commitments(content),
    }


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    interval_s: float = 0.2,
    explain: Callable[[], Awaitable[object]] | None = None,
) -> float:
    """Wait until ``check()`` is true; returns the seconds it took, fails at the deadline
    (with what ``explain()`` says about the state, when given)."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            state = await explain() if explain is not None else ""
            raise AssertionError(f"not true within {timeout_s:g} s: {check.__name__} {state}")
        await asyncio.sleep(interval_s)
    return time.monotonic() - started


async def dead_letters_about(database: Database, application_ids: list[str]) -> list[str]:
    """The dead letters of every service whose event concerns one of these applications, with
    their consumer, type and error. (Not a count against the start: the services a scenario
    starts also catch up with what earlier tests left on a shared broker, and may rightly
    dead-letter an event of theirs.)"""
    patterns = [f"%{application_id}%" for application_id in application_ids]
    found: list[str] = []
    async with database.engine.connect() as conn:
        for schema in SERVICES_WITH_INBOX:
            query = text(
                f'SELECT consumer, event_type, error FROM "{schema}".dead_letter '
                "WHERE payload LIKE ANY(:patterns)"
            )
            for row in await conn.execute(query, {"patterns": patterns}):
                found.append(f"{schema}/{row.consumer} {row.event_type}: {row.error[:400]}")
    return found


def delivered_and_told(outcome: dict[str, int]) -> bool:
    """The application is in the wallet and the citizen was told: notify hears of the
    certificate on its own consumer, independently of intake, so one does not imply the
    other at any given moment."""
    return outcome["delivered"] == 1 and outcome["notifications_per_kind"] >= 1


async def outcome_of(database: Database, application_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per application: its status history and what each service made of it — the numbers
    that must come out exactly once whatever failed on the way."""
    ids = list(application_ids)
    queries = {
        "decisions": "SELECT application_id::text, count(*) FROM approval.decision "
        "WHERE application_id::text = ANY(:ids) GROUP BY 1",
        "certificates": "SELECT application_id::text, count(*) FROM sharing.certificate "
        "WHERE application_id::text = ANY(:ids) GROUP BY 1",
        "delivered": "SELECT id::text, count(*) FROM intake.application "
        "WHERE id::text = ANY(:ids) AND status = 'delivered' GROUP BY 1",
        # The most notifications of one kind for one application: 1 unless a step was
        # applied twice (the same citizen told twice that it was approved, say).
        "notifications_per_kind": "SELECT application_id, max(n) FROM (SELECT application_id,"
        " kind, count(*) AS n FROM notify.notification WHERE application_id = ANY(:ids)"
        " GROUP BY 1, 2) AS k GROUP BY 1",
    }
    result: dict[str, dict[str, int]] = {i: {k: 0 for k in queries} for i in ids}
    async with database.engine.connect() as conn:
        for name, sql in queries.items():
            for application_id, count in (await conn.execute(text(sql), {"ids": ids})).all():
                result[application_id][name] = int(count)
    return result


@asynccontextmanager
async def platform_processes(
    infrastructure: Infrastructure, logs: Path, **env: str
) -> AsyncIterator[ServiceProcesses]:
    """All six services as processes (``wangban serve``, as in a container) on the test
    infrastructure, with the suite's short Kafka timeouts so that a killed member's partitions
    move within seconds; stopped (SIGTERM, then SIGKILL) whatever happens."""
    ports = {name: free_port() for name in SERVICE_NAMES}
    environment = service_env(
        database_url=infrastructure.database_url,
        kafka_bootstrap=infrastructure.kafka_bootstrap,
        data_dir=infrastructure.data_dir,
        ports=ports,
        base={k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")},
        WANGBAN_ENV="test",
        WANGBAN_LOG_LEVEL="WARNING",
        WANGBAN_KAFKA_SESSION_TIMEOUT_MS="2000",
        WANGBAN_KAFKA_HEARTBEAT_INTERVAL_MS="300",
        WANGBAN_KAFKA_REQUEST_TIMEOUT_MS="3000",
        WANGBAN_OUTBOX_POLL_INTERVAL_S="1",
        # A call to another service while holding a transaction fails (as in-process tests).
        WANGBAN_TRANSACTION_GUARD="raise",
        # One applicant sends the whole stream: the per-user limit is not what is tested.
        WANGBAN_GATEWAY_SUBMISSIONS_PER_MINUTE_PER_USER="10000",
        WANGBAN_GATEWAY_SUBMISSIONS_PER_MINUTE_PER_IP="10000",
        **env,
    )
    services = ServiceProcesses(
        environment, logs, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    )
    try:
        services.start(SERVICE_NAMES)
        await services.wait_ready(timeout_s=120)
        yield services
    finally:
        services.stop(grace_s=10)


async def where_they_are(database: Database, application_ids: list[str]) -> dict[str, int]:
    """How many applications are in each (intake status, approval case status, decision)
    combination: what a failing scenario reports, to show where applications got stuck."""
    sql = text(
        "SELECT a.status, coalesce(c.status, '-'), coalesce(string_agg(d.kind, ','), '-') "
        "FROM intake.application a LEFT JOIN approval.case c ON c.application_id = a.id "
        "LEFT JOIN approval.decision d ON d.application_id = a.id "
        "WHERE a.id::text = ANY(:ids) GROUP BY a.id, a.status, c.status"
    )
    counts: dict[str, int] = {}
    async with database.engine.connect() as conn:
        for row in (await conn.execute(sql, {"ids": list(application_ids)})).all():
            key = " / ".join(str(v) for v in row)
            counts[key] = counts.get(key, 0) + 1
    return counts


# --- the services in process, without the gateway -----------------------------------------

CERTIFICATE_TEMPLATE = "tmpl-certificate-issued"


def persona_who(outcome: str) -> Any:
    return persona_for(ELDERLY_ALLOWANCE, passes=outcome == "pass")


@dataclass
class Platform:
    settings: Settings
    database: Database
    apps: dict[str, FastAPI]
    runners: list[ConsumerRunner]
    intake: httpx.AsyncClient
    notify: httpx.AsyncClient
    version_id: str
    content: dict[str, Any]

    async def apply(self, persona: Any) -> tuple[dict[str, str], str]:
        """A citizen (WeChat bound, certificate message subscribed) applies; returns the
        citizen's headers and the application id."""
        headers, response = await self.submit(persona)
        assert response.status_code == 201, response.text
        return headers, str(response.json()["id"])

    async def submit(self, persona: Any) -> tuple[dict[str, str], httpx.Response]:
        """The citizen's submission and intake's answer, whatever it is."""
        identity = Identity(
            subject=f"u-{persona.key}-{uuid.uuid4().hex[:6]}",
            kind="citizen",
            assurance=AssuranceLevel.REAL_PERSON,
            person_ref=BlindIndex.from_settings(self.settings).resident_id(persona.id_number),
        )
        tokens = InternalTokens.from_settings(self.settings)
        headers = {"Authorization": f"Bearer {tokens.issue(identity, issuer='gateway')}"}
        gateway = Identity(subject="gateway", kind="service", assurance=AssuranceLevel.WECHAT)
        bound = await self.notify.put(
            f"/internal/recipients/{identity.subject}/wechat",
            json={"openid": f"o-{identity.subject}"},
            headers={"Authorization": f"Bearer {tokens.issue(gateway, issuer='gateway')}"},
        )
        assert bound.status_code == 204, bound.text
        subscribed = await self.notify.post(
            "/me/subscriptions", json={"results": {CERTIFICATE_TEMPLATE: "accept"}}, headers=headers
        )
        assert subscribed.status_code == 200, subscribed.text
        commitment = commitments(self.content)
        response = await self.intake.post(
            "/applications",
            json={
                "item_version_id": self.version_id,
                "applicant": {"id_number": persona.id_number, "name": persona.name},
                "form": persona.form(ELDERLY_ALLOWANCE, today=date.today()),
                "materials": commitment,
            },
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        return headers, response


async def ready_for_applications(
    stack: AsyncExitStack,
    database: Database,
    settings: Settings,
    apps: Mapping[str, FastAPI],
    *,
    version_id: str,
) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    """Once the in-process services run: notify's templates seeded, the item version known to
    intake, approval and sharing (so applying does not race the catalogue's event), and
    clients of intake and notify (closed with ``stack``)."""
    async with database.sessionmaker() as session, session.begin():
        await seed_notify_templates(session, settings)

    async def item_known_everywhere() -> bool:
        async with database.sessionmaker() as session:
            copies = [
                await session.get(IntakeCopy, version_id),
                await session.get(ApprovalCopy, version_id),
                await session.get(SharingCopy, version_id),
            ]
        return all(c is not None for c in copies)

    await eventually(item_known_everywhere, timeout_s=30)
    intake, notify = [
        await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=apps[name]), base_url=f"http://{name}"
            )
        )
        for name in ("intake", "notify")
    ]
    return intake, notify


@asynccontextmanager
async def running_platform(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> AsyncIterator[Platform]:
    version_id, content = await publish_allowance(database)
    base = make_settings(infrastructure, data_dir=tmp_path)
    async with AsyncExitStack() as stack:
        sharing = create_service_app(load_spec("sharing"), base, background=True)
        await stack.enter_async_context(sharing.router.lifespan_context(sharing))
        sharing_url = await stack.enter_async_context(serve_asgi(sharing))
        # The catalog by URL too: approval asks it for a version it has not read yet.
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
        apps = {"sharing": sharing, "catalog": catalog} | {
            name: create_service_app(load_spec(name), settings, background=True)
            for name in ("intake", "approval", "notify")
        }
        for name, app in apps.items():
            if name not in ("sharing", "catalog"):
                await stack.enter_async_context(app.router.lifespan_context(app))
        runners = [r for app in apps.values() for r in app.state.runtime.runners]
        await wait_until_assigned(runners, timeout_s=45)
        intake, notify = await ready_for_applications(
            stack, database, settings, apps, version_id=version_id
        )
        yield Platform(settings, database, apps, runners, intake, notify, version_id, content)


def report(scenario: str, **figures: object) -> None:
    """One line of the scenario's figures (applications, faults, losses, duplicates), for
    docs/reliability.md: ``pytest tests/reliability -s | grep RELIABILITY``."""
    print(f"RELIABILITY {scenario} {json.dumps(figures, ensure_ascii=False, default=str)}")
