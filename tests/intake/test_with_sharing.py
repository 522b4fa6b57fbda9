"""Intake and the sharing service together, over real HTTP: the government's data fills the
form (read-only) and replaces the household-register material, for a sandbox persona."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import select

from sandbox import PERSONAS, SandboxPopulation
from sharing_service.consumers import build_consumer
from sharing_service.models import LookupAudit
from sharing_service.registry import put_grant, seed_registry
from tests.infrastructure import Infrastructure, make_settings
from tests.intake.support import publish_item
from tests.serving import serve_asgi
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.crypto import BlindIndex
from wangban.db import Database
from wangban.events import envelope_for
from wangban.services import load_spec

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "姓名", "x-prefill": "gongan.huji.name"},
        "address": {
            "type": "string",
            "title": "户籍地址",
            "x-prefill": "gongan.huji.registered_address",
        },
        "bank_account": {"type": "string", "title": "收款银行账号"},
    },
    "required": ["name", "address", "bank_account"],
}
MATERIALS = [
    {"name": "户口簿", "source": "shared:gongan.huji"},
    {"name": "承诺书", "source": "commitment"},
]


async def test_prefill_and_material_resolution_through_the_sharing_service(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    persona = PERSONAS[0]
    record = SandboxPopulation.build(today=date.today()).record("gongan.huji", persona.id_number)
    assert record is not None
    base_settings = make_settings(infrastructure, data_dir=tmp_path)
    sharing_app = create_service_app(load_spec("sharing"), base_settings, background=False)
    async with sharing_app.router.lifespan_context(sharing_app), serve_asgi(sharing_app) as url:
        settings = make_settings(infrastructure, data_dir=tmp_path, sharing_url=url)
        intake_app = create_service_app(load_spec("intake"), settings, background=False)
        async with database.sessionmaker() as session, session.begin():
            await seed_registry(session)
            version = await publish_item(
                session,
                implementing_code=f"TEST-{uuid.uuid4().hex[:12]}",
                form_schema=SCHEMA,
                materials=MATERIALS,
            )
            await put_grant(
                session,
                consumer="intake",
                dataset_code="gongan.huji",
                item_code=version.implementing_code,
                disclose_fields=["name", "registered_address"],
            )
            # The sharing service learns the version from the catalog's event, as intake did.
            from catalog_service.events import ItemPublished

            event = ItemPublished(
                item_id=version.item_id,
                version_id=version.version_id,
                version=1,
                implementing_code=version.implementing_code,
                lists=[],
                published_at=version.published_at.isoformat(),
                content=version.content,
            )
            handler = build_consumer(settings).handlers[ItemPublished.event_type][1]
            await handler(session, event=event, envelope=envelope_for(event, source="/t"))

        identity = Identity(
            subject="u-persona",
            kind="citizen",
            assurance=AssuranceLevel.REAL_PERSON,
            person_ref=BlindIndex.from_settings(settings).resident_id(persona.id_number),
        )
        token = InternalTokens.from_settings(settings).issue(identity, issuer="gateway")
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            intake_app.router.lifespan_context(intake_app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=intake_app), base_url="http://intake"
            ) as client,
        ):
            prefilled = await client.post(
                "/prefill",
                json={"item_version_id": version.version_id, "id_number": persona.id_number},
                headers=headers,
            )
            assert prefilled.status_code == 200, prefilled.text
            values = prefilled.json()
            assert values["name"]["value"] == record["name"]
            assert values["address"]["value"] == record["registered_address"]
            assert values["address"]["read_only"] and values["address"]["source"] == "government"

            applied = await client.post(
                "/applications",
                json={
                    "item_version_id": version.version_id,
                    "applicant": {"id_number": persona.id_number, "name": persona.name},
                    "form": {"name": "别人", "address": "改过的地址", "bank_account": "6222"},
                    "materials": [{"index": 1, "commitment": True}],
                },
                headers={**headers, "Idempotency-Key": "with-sharing-1"},
            )
        assert applied.status_code == 201, applied.text
        application = applied.json()
        # Read-only means read-only: the government's values, whatever the form carried.
        assert application["form"]["address"] == record["registered_address"]
        assert application["form"]["name"] == record["name"]
        assert application["form"]["bank_account"] == "6222"
        assert application["form_sources"]["address"]["dataset"] == "gongan.huji"
        assert "bank_account" not in application["form_sources"]
        household = application["materials"][0]
        assert household["status"] == "shared" and household["evidence_kind"] == "lookup"
        # The reviewer reads which department's data stood in for the material.
        assert household["note"] == "已通过数据共享获取（东莞市公安局·户籍人口信息），无需提交"
        assert application["status"] == "accepted"  # nothing to check by hand

    async with database.sessionmaker() as session:
        audited = (
            await session.scalars(
                select(LookupAudit).where(LookupAudit.item_code == version.implementing_code)
            )
        ).all()
    assert {(a.consumer, a.outcome) for a in audited} == {("intake", "granted")}
    assert household["evidence_id"] in {a.id for a in audited}
    assert all(persona.id_number not in a.subject_masked for a in audited)
