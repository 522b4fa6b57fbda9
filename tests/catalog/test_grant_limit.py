"""An item's grant limit (一次性待遇: once per person, or once per period) is part of its
content: checked for sense, exported and imported like every element, and — since it decides
who may have the benefit at all — changed only with a second person's approval (四眼原则)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import review, service
from catalog_service.schemas import GrantLimit, ItemContent
from tests.catalog.support import item_content

DEMO_ITEMS = Path(__file__).parents[2] / "catalog_service" / "demo" / "items.json"


def test_a_limit_per_period_names_its_period_and_only_it_does() -> None:
    assert item_content().grant_limit == GrantLimit.NONE  # existing items keep working
    yearly = item_content(grant_limit="once_per_period", grant_period="year")
    assert yearly.grant_period == "year"
    with pytest.raises(ValidationError, match="必须写明周期"):
        item_content(grant_limit="once_per_period")
    with pytest.raises(ValidationError, match="才能填写周期"):
        item_content(grant_limit="once", grant_period="month")
    with pytest.raises(ValidationError):
        item_content(grant_limit="twice")


async def test_changing_the_grant_limit_takes_a_second_person(db_session: AsyncSession) -> None:
    content = item_content(department="东莞市民政局", auto_approval=False, rules=[])
    draft = await service.create_item_draft(db_session, content=content)
    published = await service.publish_version(db_session, version_id=draft.id)
    author = review.Actor("s-author-mz", "东莞市民政局", "441900")
    revision = await review.start_revision(db_session, actor=author, item_id=published.item_id)
    limited = ItemContent.model_validate({**content.model_dump(mode="json"), "grant_limit": "once"})
    await review.edit_draft(db_session, actor=author, version_id=revision.id, content=limited)
    with pytest.raises(review.ReviewRequired) as refused:
        await review.publish_directly(db_session, actor=author, version_id=revision.id)
    assert refused.value.extra["changed_fields"] == ["grant_limit"]
    assert "享受次数限制" in str(refused.value.detail)


def test_the_demo_catalogues_one_time_benefits_declare_it() -> None:
    demo = json.loads(DEMO_ITEMS.read_text("utf-8"))
    limited = {i["name"] for i in demo if ItemContent.model_validate(i).grant_limit != "none"}
    assert limited == {
        "一次性创业资助申领",
        "城乡居民基本养老保险待遇领取",
        "职工基本养老保险退休待遇申领",
        "困难残疾人生活补贴和重度残疾人护理补贴申领",
        "高龄老人津贴申领",
    }
