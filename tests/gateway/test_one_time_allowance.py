"""高龄老人津贴 is granted once per person (issue 18, defect 7): a second application through
the gateway, with a new Idempotency-Key, while the first is open is refused with a Chinese
detail naming the first; once the first is withdrawn, a new one is accepted."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import httpx

from approval_service.models import ItemVersionCopy as ApprovalCopy
from catalog_service import repository as catalog_repository
from catalog_service import service as catalog
from catalog_service.schemas import ItemContent
from intake_service.models import ItemVersionCopy as IntakeCopy
from sandbox import ELDERLY_ALLOWANCE, persona_for
from sharing_service.models import ItemVersionCopy as SharingCopy
from sharing_service.registry import seed_registry
from tests.gateway.support import Gateway, running_gateway
from tests.grant_limits import demo_item, set_aside_earlier_applications
from tests.infrastructure import Infrastructure
from tests.kit.support import eventually
from wangban.db import Database


async def test_the_allowance_is_applied_for_once_until_the_first_application_is_withdrawn(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    content = demo_item(ELDERLY_ALLOWANCE)
    assert content["grant_limit"] == "once"
    async with database.sessionmaker() as session, session.begin():
        await seed_registry(session)
        if await catalog_repository.item_by_code(session, ELDERLY_ALLOWANCE) is None:
            draft = await catalog.create_item_draft(
                session, content=ItemContent.model_validate(content)
            )
            await catalog.publish_version(session, version_id=draft.id)
    elder = persona_for(ELDERLY_ALLOWANCE)
    application = {
        "item_code": ELDERLY_ALLOWANCE,
        "form": elder.form(ELDERLY_ALLOWANCE, today=date.today()),
        "materials": [
            {"index": i, "commitment": True}
            for i, m in enumerate(content["materials"])
            if m["source"] == "commitment"
        ],
    }

    async def apply(gateway: Gateway, headers: dict[str, str]) -> httpx.Response:
        return await gateway.client.post(
            "/api/v1/applications",
            json=application,
            headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        )

    # Granted (秒批, every service with its consumers): a second application is refused.
    async with running_gateway(
        infrastructure,
        database,
        background=True,
        data_dir=tmp_path / "granted",
        gateway_submissions_per_minute_per_ip=1000,
    ) as gateway:
        # Earlier tests granted this persona the allowance: theirs do not count here.
        await set_aside_earlier_applications(
            database, gateway.settings, id_number=elder.id_number, item_code=ELDERLY_ALLOWANCE
        )
        guide = await gateway.client.get(f"/api/v1/items/{ELDERLY_ALLOWANCE}")
        version_id = guide.json()["id"]

        async def known_everywhere() -> bool:
            async with database.sessionmaker() as session:
                copies = (IntakeCopy, ApprovalCopy, SharingCopy)
                return all([await session.get(c, version_id) is not None for c in copies])

        # Intake, approval and sharing learn the version from the catalog's event.
        await eventually(known_everywhere, timeout_s=60)
        headers = await gateway.citizen(name=elder.name, id_number=elder.id_number)
        granted = await apply(gateway, headers)
        assert granted.status_code == 201, granted.text
        granted_id = granted.json()["id"]

        async def delivered() -> bool:
            got = await gateway.client.get(f"/api/v1/applications/{granted_id}", headers=headers)
            return bool(got.json()["status"] == "delivered")

        await eventually(delivered, timeout_s=60)
        again = await apply(gateway, headers)
        assert again.status_code == 409, again.text
        problem = again.json()
        assert problem["type"].endswith("already-granted"), problem
        assert granted_id in problem["detail"] and "不能重复申请" in problem["detail"]
        assert problem["existing_application"]["id"] == granted_id

    # Open (no consumers run: approval never decides): refused until the first is withdrawn.
    async with running_gateway(
        infrastructure,
        database,
        data_dir=tmp_path / "open",
        gateway_submissions_per_minute_per_ip=1000,
    ) as gateway:
        await set_aside_earlier_applications(
            database, gateway.settings, id_number=elder.id_number, item_code=ELDERLY_ALLOWANCE
        )
        headers = await gateway.citizen(name=elder.name, id_number=elder.id_number)
        first = await apply(gateway, headers)
        assert first.status_code == 201, first.text
        assert first.json()["status"] == "accepted"
        first_id = first.json()["id"]

        second = await apply(gateway, headers)
        assert second.status_code == 409, second.text
        problem = second.json()
        assert problem["type"].endswith("application-open"), problem
        assert first_id in problem["detail"] and "每人限享受一次" in problem["detail"]
        assert "撤回" in problem["detail"]
        assert problem["existing_application"]["id"] == first_id

        withdrawn = await gateway.client.post(
            f"/api/v1/applications/{first_id}/withdraw", json={}, headers=headers
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["status"] == "withdrawn"

        third = await apply(gateway, headers)
        assert third.status_code == 201, third.text
        assert third.json()["id"] != first_id
