"""主项 and 子项 through the gateway: a search hit on a 子项 carries its 主项, and the 主项's guide
lists its 子项, as the mini-program's search and guide screens show them (names from the real
Sichuan list)."""

from __future__ import annotations

import uuid
from pathlib import Path

from catalog_service import service as catalog
from tests.catalog.support import item_content
from tests.gateway.support import running_gateway
from tests.infrastructure import Infrastructure
from wangban.db import Database

MAIN = "户口登记（包括注销、恢复、变更）"
SUBS = ["户口恢复", "户口注销", "户口变更"]


async def test_a_sub_item_hit_names_its_main_item_and_the_main_item_lists_its_sub_items(
    infrastructure: Infrastructure, database: Database, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    department = f"区公安分局-{tag}"  # this test's own: other tests' items share the database
    codes: dict[str, str] = {}
    async with database.sessionmaker() as session, session.begin():
        for name in [MAIN, *SUBS]:
            code = f"TEST-MAIN-{name[:4]}-{tag}"
            draft = await catalog.create_item_draft(
                session,
                content=item_content(
                    name=name,
                    implementing_code=code,
                    department=department,
                    main_item=None if name == MAIN else MAIN,
                ),
            )
            await catalog.publish_version(session, version_id=draft.id)
            codes[name] = code
    async with running_gateway(infrastructure, database, data_dir=tmp_path) as gateway:
        found = await gateway.client.get(
            "/api/v1/items", params={"q": "户口恢复", "department": department}
        )
        assert found.status_code == 200, found.text
        hits = {hit["implementing_code"]: hit for hit in found.json()["items"]}
        assert hits[codes["户口恢复"]]["main_item"] == MAIN
        assert hits[codes["户口恢复"]] == found.json()["items"][0]  # the exact name first
        main_hit = await gateway.client.get(
            "/api/v1/items", params={"q": "户口登记", "department": department}
        )
        assert {hit["implementing_code"]: hit["main_item"] for hit in main_hit.json()["items"]}[
            codes[MAIN]
        ] is None

        guide = await gateway.client.get(f"/api/v1/items/{codes[MAIN]}")
        assert guide.status_code == 200, guide.text
        assert guide.json()["sub_items"] == [
            {"implementing_code": codes[name], "name": name}
            for name in sorted(SUBS, key=lambda n: codes[n])
        ]
        sub_guide = await gateway.client.get(f"/api/v1/items/{codes['户口恢复']}")
        assert sub_guide.json()["content"]["main_item"] == MAIN
        assert sub_guide.json()["sub_items"] == []
