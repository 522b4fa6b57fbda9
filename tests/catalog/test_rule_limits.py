"""秒批 rules too costly to evaluate are refused when the item is saved (issue 17, finding 5):
the catalogue applies the limits of ``wangban.cel_limits`` and names the rule."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from catalog_service import service
from tests.catalog.support import NESTED_MAPS, item_content
from wangban import cel_limits


def _rule(name: str, expression: str) -> dict[str, object]:
    return {"name": name, "expression": expression, "message": "不符合条件"}


async def test_the_nested_map_rule_is_refused_at_save_naming_it(db_session: AsyncSession) -> None:
    content = item_content(
        rules=[_rule("age_80", "applicant.age >= 80"), _rule("boom", NESTED_MAPS)]
    )
    with pytest.raises(service.InvalidItem) as refused:
        await service.create_item_draft(db_session, content=content)
    [problem] = refused.value.extra["problems"]
    assert problem["field"] == "rules/1/expression"
    assert problem["message"].startswith("规则“boom”")
    assert "嵌套了 3 层" in problem["message"]
    assert "boom" in str(refused.value.detail)


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("[1, 2].reduce(r, i, 0, r + i) > 0", "reduce"),
        ("form.l" + ".map(x, x)" * (cel_limits.MAX_COMPREHENSIONS + 1) + ".size() > 0", "最多"),
        (" || ".join(["applicant.age == 1"] * 60), "语法节点"),
    ],
)
async def test_other_costly_shapes_are_refused_at_save(
    db_session: AsyncSession, expression: str, says: str
) -> None:
    content = item_content(rules=[_rule("costly", expression)])
    with pytest.raises(service.InvalidItem) as refused:
        await service.create_item_draft(db_session, content=content)
    [problem] = refused.value.extra["problems"]
    assert problem["message"].startswith("规则“costly”") and says in problem["message"]


async def test_too_many_rules_are_refused(db_session: AsyncSession) -> None:
    many = [_rule(f"r{n}", "applicant.age >= 18") for n in range(cel_limits.MAX_RULES + 1)]
    with pytest.raises(service.InvalidItem) as refused:
        await service.create_item_draft(db_session, content=item_content(rules=many))
    assert [p["field"] for p in refused.value.extra["problems"]] == ["rules"]


async def test_a_list_times_list_rule_within_the_limits_is_accepted(
    db_session: AsyncSession,
) -> None:
    allowed = (
        'form.items.all(x, x in ["甲", "乙"]) && form.items.exists(x, ["甲"].exists(y, y == x))'
    )
    draft = await service.create_item_draft(
        db_session, content=item_content(rules=[_rule("allowed", allowed)])
    )
    assert draft.status == "draft"
