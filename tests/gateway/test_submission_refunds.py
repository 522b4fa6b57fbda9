"""An item the catalogue publishes but intake has not learnt yet (its copy lags, as just after a
publication or a start) is applied for like any other: intake asks the catalog. And
submissions refused for the platform's fault (a service that cannot answer) never count
against a citizen's rate limit; refusals for the citizen's own doing still count."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from catalog_service import service as catalog
from gateway.ratelimit import our_fault
from gateway.upstream import Upstreams
from intake_service.models import ItemVersionCopy as IntakeCopy
from sandbox import PERSONAS
from tests.catalog.support import item_content
from tests.gateway.support import running_gateway
from tests.infrastructure import Infrastructure
from wangban.db import Database
from wangban.embedded import free_port

LIMIT = 2


async def _apply(client: httpx.AsyncClient, headers: dict[str, str], code: str) -> int:
    answer = await client.post(
        "/api/v1/applications",
        json={"item_code": code, "form": {"bank_account": "6222"}},
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
    )
    return answer.status_code


def _person() -> Any:
    return PERSONAS[0]


async def _published_elsewhere(database: Database, **overrides: Any) -> str:
    """An item published in the catalogue whose event intake has not read (no consumers run
    here): intake's copy lags, as just after a publication or a start."""
    code = f"TEST-LAG-{uuid.uuid4().hex[:10]}"
    async with database.sessionmaker() as session, session.begin():
        draft = await catalog.create_item_draft(
            session, content=item_content(implementing_code=code, **overrides)
        )
        await catalog.publish_version(session, version_id=draft.id)
    return code


async def test_an_item_intake_has_not_learnt_yet_is_applied_for_not_refused(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    # Only a commitment: sharing (whose copy lags the same way) is not asked.
    code = await _published_elsewhere(
        database, materials=[{"name": "承诺书", "source": "commitment"}]
    )
    person = _person()
    async with running_gateway(
        infrastructure, database, data_dir=tmp_path, gateway_submissions_per_minute_per_ip=1000
    ) as gateway:
        headers = await gateway.citizen(name=person.name, id_number=person.id_number)
        # Intake asks the catalog for the version and keeps it, as the event would have.
        answer = await gateway.client.post(
            "/api/v1/applications",
            json={
                "item_code": code,
                "form": {"bank_account": "6222"},
                "materials": [{"index": 0, "commitment": True}],
            },
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["status"] == "accepted"
        async with database.sessionmaker() as session:
            copies = await session.scalars(
                select(IntakeCopy).where(IntakeCopy.implementing_code == code)
            )
            assert [c.content["implementing_code"] for c in copies] == [code]


def test_which_refusals_are_our_fault() -> None:
    assert our_fault(503, "urn:wangban:problem:upstream-unavailable")
    assert our_fault(500, None)
    # Intake not knowing an item the gateway has just had from the catalogue.
    assert our_fault(404, "urn:wangban:problem:item-version-not-available")
    assert not our_fault(404, "urn:wangban:problem:item-not-found")
    assert not our_fault(422, "urn:wangban:problem:validation-failed")
    assert not our_fault(429, "urn:wangban:problem:rate-limited")


async def test_refusals_that_are_our_fault_do_not_use_up_the_submission_limit(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    code = await _published_elsewhere(database)
    person = _person()
    async with running_gateway(
        infrastructure,
        database,
        data_dir=tmp_path,
        gateway_submissions_per_minute_per_user=LIMIT,
        gateway_submissions_per_minute_per_ip=1000,
    ) as gateway:
        headers = await gateway.citizen(name=person.name, id_number=person.id_number)
        # Intake down: 503, and not counted.
        upstreams: Upstreams = gateway.app.state.upstreams
        down = Upstreams(
            gateway.settings.model_copy(
                update={"intake_url": f"http://127.0.0.1:{free_port()}", "http_retries": 0}
            ),
            transports={
                name: httpx.ASGITransport(app=app)
                for name, app in gateway.services.items()
                if name != "intake"  # intake by URL, where nothing listens
            },
        )
        gateway.app.state.upstreams = down
        try:
            unreachable = [await _apply(gateway.client, headers, code) for _ in range(LIMIT + 3)]
        finally:
            gateway.app.state.upstreams = upstreams
            await down.close()
        assert unreachable == [503] * (LIMIT + 3)  # never 429: none of them counted

        # The citizen's own doing (an item that does not exist) counts as before.
        own = [await _apply(gateway.client, headers, "NO-SUCH-ITEM") for _ in range(LIMIT + 1)]
        assert own[:LIMIT] == [404] * LIMIT and own[LIMIT] == 429
