"""Demo catalogue of one city (东莞), loaded by `wangban up` and `wangban seed`.

Search synonyms are not demo data: the citizen lexicon (catalog_service/lexicon) is production
data that `wangban migrate` loads, and it covers the seven groups this seed used to write.

Idempotent: an item or bundle whose code already exists is left as it is, so re-running never
creates versions and never overwrites what an admin changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import repository, service
from catalog_service.schemas import BundleContent, ItemContent

DEMO_DIR = Path(__file__).parent / "demo"


def demo_items() -> list[ItemContent]:
    raw = json.loads((DEMO_DIR / "items.json").read_text(encoding="utf-8"))
    return [ItemContent.model_validate(entry) for entry in raw]


def demo_bundles() -> list[BundleContent]:
    raw = json.loads((DEMO_DIR / "bundles.json").read_text(encoding="utf-8"))
    return [BundleContent.model_validate(entry) for entry in raw]


async def seed_catalogue(session: AsyncSession) -> None:
    for content in demo_items():
        if await repository.item_by_code(session, content.implementing_code) is None:
            draft = await service.create_item_draft(session, content=content)
            await service.publish_version(session, version_id=draft.id)
    for bundle in demo_bundles():
        if await repository.bundle_by_code(session, bundle.code) is None:
            draft_bundle = await service.create_bundle_draft(session, content=bundle)
            await service.publish_bundle(session, version_id=draft_bundle.id)
