"""What the reliability scenarios share: the 秒批 item published, its applicant signed in
through the gateway, and counting what every service holds for a set of applications."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, text

from catalog_service import repository as catalog_repository
from catalog_service import service as catalog
from catalog_service.schemas import ItemContent
from gateway.models import Account
from sharing_service.registry import seed_registry
from sharing_service.sandbox import PERSONAS
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.settings import Settings

ALLOWANCE_CODE = "11441900007330256F-000205001000-01"  # 高龄老人津贴申领 (秒批)
DEMO_ITEMS = Path(__file__).parents[2] / "catalog_service" / "demo" / "items.json"
SERVICES_WITH_INBOX = ("catalog", "intake", "approval", "sharing", "notify", "gateway")


def elder() -> Any:
    """The sandbox persona whose records pass the allowance."""
    for persona in PERSONAS:
        if any(c.item_code == ALLOWANCE_CODE and c.as_company is None for c in persona.passes):
            return persona
    raise AssertionError("no persona passes the allowance")


def allowance_content() -> dict[str, Any]:
    demo = json.loads(DEMO_ITEMS.read_text("utf-8"))
    content: dict[str, Any] = next(i for i in demo if i["implementing_code"] == ALLOWANCE_CODE)
    return content


async def publish_allowance(database: Database) -> None:
    """The data-sharing registry and the allowance item, published (once per database)."""
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        if await catalog_repository.item_by_code(session, ALLOWANCE_CODE) is None:
            draft = await catalog.create_item_draft(
                session, content=ItemContent.model_validate(allowance_content())
            )
            await catalog.publish_version(session, version_id=draft.id)


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


def allowance_application() -> dict[str, Any]:
    content = allowance_content()
    return {
        "item_code": ALLOWANCE_CODE,
        "form": elder().form(ALLOWANCE_CODE, today=date.today()),
        "materials": [
            {"index": i, "commitment": True}
            for i, m in enumerate(content["materials"])
            if m["source"] == "commitment"
        ],
    }


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float, interval_s: float = 0.2
) -> float:
    """Wait until ``check()`` is true; returns the seconds it took, fails at the deadline."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not true within {timeout_s:g} s: {check.__name__}")
        await _sleep(interval_s)
    return time.monotonic() - started


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def dead_letter_counts(database: Database) -> dict[str, int]:
    """Rows in every service's ``dead_letter`` table."""
    counts: dict[str, int] = {}
    async with database.engine.connect() as conn:
        for schema in SERVICES_WITH_INBOX:
            query = text(f'SELECT count(*) FROM "{schema}".dead_letter')
            counts[schema] = int((await conn.execute(query)).scalar_one())
    return counts


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
