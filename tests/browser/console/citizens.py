"""A citizen's application through the gateway's API, as the mini-program files it (the
development login as a persona, the persona's sample form, commitments for the materials that
allow one), waited for until the platform has finished it: for the console's workspaces that
start from a finished application (整改 of a bad rating, 审计 of the lookups it made)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date
from typing import Any

from playwright.async_api import APIRequestContext

from sandbox import Persona
from tests.browser.console.steps import WAIT_MS

FINISHED = frozenset({"completed", "delivered"})


async def citizen_headers(request: APIRequestContext, persona: Persona) -> dict[str, str]:
    login = await request.post(
        "/api/v1/auth/dev",
        data={
            "openid": f"o-console-{uuid.uuid4().hex[:12]}",
            "assurance": "real_name",
            "name": persona.name,
            "id_number": persona.id_number,
        },
    )
    assert login.ok, await login.text()
    return {"Authorization": f"Bearer {(await login.json())['access_token']}"}


async def finished_application(
    request: APIRequestContext, headers: dict[str, str], persona: Persona, item_code: str
) -> dict[str, Any]:
    """The persona's application for the item (one 秒批 approves at once), once finished."""
    guide = await request.get(f"/api/v1/items/{item_code}")
    assert guide.ok, await guide.text()
    materials = (await guide.json())["content"]["materials"]
    filed = await request.post(
        "/api/v1/applications",
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        data={
            "item_code": item_code,
            "form": persona.form(item_code, today=date.today()),
            "materials": [
                {"index": i, "commitment": True}
                for i, m in enumerate(materials)
                if m["source"] == "commitment"
            ],
        },
    )
    assert filed.ok, await filed.text()
    application_id = (await filed.json())["id"]
    # 秒批 decides at once; the decision reaches intake as an event, a moment later.
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        read = await request.get(f"/api/v1/applications/{application_id}", headers=headers)
        assert read.ok, await read.text()
        application: dict[str, Any] = await read.json()
        if application["status"] in FINISHED or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert application["status"] in FINISHED, (application["status"], application["status_reason"])
    return application
