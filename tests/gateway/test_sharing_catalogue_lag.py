"""An item the catalogue publishes but sharing has not learnt yet (its copy lags, as just after a
publication or a start): intake asks sharing to resolve its shared materials, and sharing asks
the catalog for the version instead of answering 404 (which intake turns into 503 for the
citizen)."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select

from catalog_service import service as catalog
from sandbox import PERSONAS
from sharing_service.models import ItemVersionCopy as SharingCopy
from sharing_service.registry import put_grant, seed_registry
from tests.catalog.support import item_content
from tests.gateway.support import running_gateway
from tests.infrastructure import Infrastructure
from wangban.db import Database


async def test_a_version_sharing_has_not_read_yet_has_its_materials_resolved(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    # Published in the catalogue; no consumers run here, so neither intake nor sharing has
    # read item.published. The shared material makes intake ask sharing to resolve it.
    code = f"TEST-SHLAG-{uuid.uuid4().hex[:10]}"
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        await put_grant(
            session,
            consumer="intake",
            dataset_code="gongan.huji",
            item_code=code,
            disclose_fields=[],
        )
        draft = await catalog.create_item_draft(
            session, content=item_content(implementing_code=code)
        )
        await catalog.publish_version(session, version_id=draft.id)
    person = next(p for p in PERSONAS if p.key == "chen_bingkun")
    async with running_gateway(
        infrastructure, database, data_dir=tmp_path, gateway_submissions_per_minute_per_ip=1000
    ) as gateway:
        headers = await gateway.citizen(name=person.name, id_number=person.id_number)
        answer = await gateway.client.post(
            "/api/v1/applications",
            json={"item_code": code, "form": {"bank_account": "6222"}, "materials": []},
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code == 201, answer.text
        # The household register was found for the applicant: nothing to bring.
        assert answer.json()["status"] == "accepted", answer.json()
    async with database.sessionmaker() as session:
        copies = (
            await session.scalars(select(SharingCopy).where(SharingCopy.implementing_code == code))
        ).all()
    assert [(c.version_id, [(m["name"], m["source"]) for m in c.materials]) for c in copies] == [
        (draft.id, [("户口簿", "shared:gongan.huji")])
    ]
