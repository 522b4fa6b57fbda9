"""Submissions refused for the platform's fault never count against a citizen's rate limit: an
item the catalogue publishes but intake has not learnt yet (its copy lags, as for a moment after
start-up), or a service that cannot answer. Refusals for the citizen's own doing still count."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from catalog_service import service as catalog
from gateway.upstream import Upstreams
from sharing_service.sandbox import PERSONAS
from tests.catalog.test_catalogue import item_content
from tests.conftest import Infrastructure
from tests.gateway.support import running_gateway
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


async def test_refusals_that_are_our_fault_do_not_use_up_the_submission_limit(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    # Published in the catalogue; intake has not read the event (no consumers run here).
    code = f"TEST-LAG-{uuid.uuid4().hex[:10]}"
    async with database.sessionmaker() as session, session.begin():
        draft = await catalog.create_item_draft(
            session, content=item_content(implementing_code=code)
        )
        await catalog.publish_version(session, version_id=draft.id)
    person = _person()
    async with running_gateway(
        infrastructure,
        database,
        data_dir=tmp_path,
        gateway_submissions_per_minute_per_user=LIMIT,
        gateway_submissions_per_minute_per_ip=1000,
    ) as gateway:
        headers = await gateway.citizen(name=person.name, id_number=person.id_number)
        lagging = [await _apply(gateway.client, headers, code) for _ in range(LIMIT + 3)]
        assert lagging == [404] * (LIMIT + 3)  # never 429: none of them counted

        # Intake down: 503, and not counted either.
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
            unreachable = [await _apply(gateway.client, headers, code) for _ in range(LIMIT + 1)]
        finally:
            gateway.app.state.upstreams = upstreams
            await down.close()
        assert unreachable == [503] * (LIMIT + 1)

        # The citizen's own doing (an item that does not exist) counts as before.
        own = [await _apply(gateway.client, headers, "NO-SUCH-ITEM") for _ in range(LIMIT + 1)]
        assert own[:LIMIT] == [404] * LIMIT and own[LIMIT] == 429
