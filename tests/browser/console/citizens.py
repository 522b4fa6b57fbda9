"""What the console's browser tests do through the gateway's API rather than a screen: a
citizen's login and application as the mini-program makes them (the development login as a
persona, a form, commitments for the materials that allow one), waiting for the platform to
decide one, and a staff member's token. The workspaces start from these: 审批 from an online
application, 整改 from a finished one badly rated, 审计 from the lookups one made, 统计 from a
few of each."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Collection
from datetime import date
from typing import Any

from playwright.async_api import APIRequestContext

from sandbox import Persona
from tests.browser.console.steps import WAIT_MS
from tests.browser.support import Desk

FINISHED = frozenset({"completed", "delivered"})


async def citizen_headers(
    request: APIRequestContext,
    persona: Persona,
    *,
    assurance: str = "real_person",
    openid: str | None = None,
) -> dict[str, str]:
    """The persona logged in as the mini-program would. One WeChat user per persona (unless
    ``openid``): the platform binds a person to one account, so every module that logs the
    same persona in must come as the same user."""
    login = await request.post(
        "/api/v1/auth/dev",
        data={
            "openid": openid or persona_openid(persona),
            "assurance": assurance,
            "name": persona.name,
            "id_number": persona.id_number,
        },
    )
    assert login.ok, await login.text()
    return {"Authorization": f"Bearer {(await login.json())['access_token']}"}


def persona_openid(persona: Persona) -> str:
    """The persona's WeChat openid: the one the mini-program's development login proposes for
    it (``dev-<key>``), since both clients' tests share one platform and a person binds one
    account."""
    return f"dev-{persona.key}"


async def staff_headers(request: APIRequestContext, desk: Desk, username: str) -> dict[str, str]:
    login = await request.post(
        "/api/v1/auth/staff", data={"username": username, "password": desk.password}
    )
    assert login.ok, await login.text()
    return {"Authorization": f"Bearer {(await login.json())['access_token']}"}


async def file_application(
    request: APIRequestContext,
    headers: dict[str, str],
    persona: Persona,
    item_code: str,
    *,
    form: dict[str, Any] | None = None,
) -> str:
    """Files the item for the persona (the persona's sample form unless ``form``, a commitment
    for each material that takes one); the application's id."""
    guide = await request.get(f"/api/v1/items/{item_code}")
    assert guide.ok, await guide.text()
    materials = (await guide.json())["content"]["materials"]
    filed = await request.post(
        "/api/v1/applications",
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        data={
            "item_code": item_code,
            "form": persona.form(item_code, today=date.today()) if form is None else form,
            "materials": [
                {"index": i, "commitment": True}
                for i, m in enumerate(materials)
                if m.get("source") == "commitment"
            ],
        },
    )
    assert filed.ok, await filed.text()
    application_id: str = (await filed.json())["id"]
    return application_id


async def application_once(
    request: APIRequestContext,
    headers: dict[str, str],
    application_id: str,
    *,
    statuses: Collection[str] | None = None,
) -> dict[str, Any]:
    """The citizen's view of the application; with ``statuses``, once it has one of them (a
    decision reaches intake as an event, a moment after it is made)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        read = await request.get(f"/api/v1/applications/{application_id}", headers=headers)
        assert read.ok, await read.text()
        application: dict[str, Any] = await read.json()
        if statuses is None or application["status"] in statuses or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert statuses is None or application["status"] in statuses, (
        application["status"],
        application["status_reason"],
    )
    return application


async def finished_application(
    request: APIRequestContext, headers: dict[str, str], persona: Persona, item_code: str
) -> dict[str, Any]:
    """The persona's application for the item (one 秒批 approves at once), once finished."""
    application_id = await file_application(request, headers, persona, item_code)
    return await application_once(request, headers, application_id, statuses=FINISHED)
