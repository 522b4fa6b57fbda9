"""The demo registry fits the demo catalogue: every dataset an item's materials or 秒批 rules
use is granted, and a persona applying for a demo item brings only what sharing cannot replace."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from sandbox import PERSONAS, SandboxProvider
from sharing_service import materials, repository
from sharing_service.directory import ProviderDirectory
from sharing_service.lookups import Caller
from sharing_service.providers import Subject
from sharing_service.registry import seed_registry
from tests.sharing.support import add_item_version, keys
from wangban.settings import Settings

ITEMS = json.loads(
    (Path(__file__).parents[2] / "catalog_service" / "demo" / "items.json").read_text("utf-8")
)
SHARED_FIELD = re.compile(r'shared\["([^"]+)"\]\.(\w+)')


async def test_every_dataset_the_demo_items_use_is_registered_and_granted(
    db_session: AsyncSession,
) -> None:
    await seed_registry(db_session)
    for item in ITEMS:
        code = item["implementing_code"]
        for material in item.get("materials", []):
            source = material.get("source", "")
            if source.startswith("shared:"):
                for consumer in ("intake", "approval"):
                    grant = await repository.grant(
                        db_session, consumer=consumer, dataset_code=source[7:], item_code=code
                    )
                    assert grant is not None, (consumer, source, code)
            if source.startswith("certificate:"):
                assert await repository.certificate_type(db_session, source[12:]) is not None
        for rule in item.get("rules", []):
            for dataset, field in SHARED_FIELD.findall(rule["expression"]):
                grant = await repository.grant(
                    db_session, consumer="approval", dataset_code=dataset, item_code=code
                )
                assert grant is not None and field in grant.disclose_fields, (code, rule["name"])
        if item.get("certificate_type"):
            assert await repository.certificate_type(db_session, item["certificate_type"])


async def test_an_elderly_resident_need_not_bring_the_household_register(
    db_session: AsyncSession, settings: Settings
) -> None:
    await seed_registry(db_session)
    allowance = next(i for i in ITEMS if i["name"] == "高龄老人津贴申领")
    elder = next(
        p for p in PERSONAS if any(c.item_code == allowance["implementing_code"] for c in p.passes)
    )
    version_id = await add_item_version(
        db_session,
        item_code=allowance["implementing_code"],
        materials=allowance["materials"],
        name=allowance["name"],
    )
    cipher, blind_index = keys(settings)
    resolved = await materials.resolve_materials(
        db_session,
        caller=Caller(consumer="intake", requested_by="intake"),
        item_version_id=version_id,
        applicant=Subject(kind="person", id=elder.id_number),
        application_id="demo-application",
        directory=ProviderDirectory(cipher=cipher, sandbox=SandboxProvider()),
        blind_index=blind_index,
    )
    by_source = {r.source: r for r in resolved}
    household = by_source["shared:gongan.huji"]
    assert household.status == "satisfied" and household.evidence is not None
    assert household.evidence.kind == "lookup"
    assert by_source["commitment"].status == "commitment"
    assert not any(r.needs_upload for r in resolved)
