"""Test support for items a person may be granted only once (``grant_limit`` of the item).

高龄老人津贴申领 is granted once per person, and only one sandbox persona qualifies for it; the
tests share one database for the whole run. So a test that applies for it as that persona first
sets aside the applications earlier tests made (the way earlier tests' accounts step aside), and
the scenarios that submit it many times for the one persona (reliability, load) use a test-local
copy of the item without the limit, under a code of its own. Production code never does either.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import update

from intake_service.models import Application
from sandbox import ELDERLY_ALLOWANCE
from sharing_service.registry import put_grant
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.settings import Settings

UNLIMITED_ALLOWANCE_CODE = "11441900007330256F-000205001000-99"
"""The test-local copy of the allowance without its grant limit (no real item has this code)."""
DEMO_DIR = Path(__file__).parents[1]
DEMO_ITEMS = DEMO_DIR / "catalog_service" / "demo" / "items.json"
DEMO_GRANTS = DEMO_DIR / "sharing_service" / "demo" / "grants.json"


def demo_item(code: str) -> dict[str, Any]:
    demo = json.loads(DEMO_ITEMS.read_text("utf-8"))
    content: dict[str, Any] = next(i for i in demo if i["implementing_code"] == code)
    return content


async def set_aside_earlier_applications(
    database: Database, settings: Settings, *, id_number: str, item_code: str
) -> int:
    """Earlier tests' applications of this person for the item no longer count against its
    grant limit: they are re-attributed to nobody (their status is left alone, so events still
    in flight about them are handled as usual). Returns how many were set aside."""
    person_ref = BlindIndex.from_settings(settings).resident_id(id_number)
    async with database.sessionmaker() as session, session.begin():
        result = await session.execute(
            update(Application)
            .where(Application.applicant_ref == person_ref, Application.item_code == item_code)
            .values(applicant_ref=f"set-aside-{uuid.uuid4().hex}")
        )
    return int(getattr(result, "rowcount", 0) or 0)


def unlimited_allowance_content() -> dict[str, Any]:
    """The allowance as the demo catalogue has it, but under its own code and without the
    grant limit: for scenarios about delivery, not about who may be granted what."""
    content = demo_item(ELDERLY_ALLOWANCE)
    content["implementing_code"] = UNLIMITED_ALLOWANCE_CODE
    content["grant_limit"] = "none"
    content.pop("grant_period", None)
    return content


async def grant_unlimited_allowance_access(database: Database) -> None:
    """The copy may read what the demo item may (the demo access policy names items by code)."""
    grants = [
        g for g in json.loads(DEMO_GRANTS.read_text("utf-8")) if g["item_code"] == ELDERLY_ALLOWANCE
    ]
    assert grants, "the demo access policy grants the allowance nothing"
    async with database.sessionmaker() as session, session.begin():
        for grant in grants:
            await put_grant(
                session,
                consumer=grant["consumer"],
                dataset_code=grant["dataset"],
                item_code=UNLIMITED_ALLOWANCE_CODE,
                disclose_fields=grant["disclose_fields"],
                verify_fields=grant["verify_fields"],
                consent_required=grant["consent_required"],
                legal_basis=grant["legal_basis"],
            )
