"""The cost of 秒批 rules is bounded (issue 17, finding 5).

Static limits (``wangban.cel_limits``) refuse the nested-map rule of the finding in a dry run
and keep a published one (saved before the limits) from being evaluated; a rule within them
that is expensive on the data it meets is stopped by the step budget. Counted, never timed:
an over-budget rule is reported as such, and the case is referred to a person."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from approval_service.rules import (
    ApplicantFacts,
    RuleSetInvalid,
    build_context,
    compile_rule_set,
    dry_run,
    evaluate,
)
from tests.catalog.support import NESTED_MAPS
from wangban import cel_limits
from wangban.app import create_service_app
from wangban.auth import AssuranceLevel, Identity, InternalTokens
from wangban.db import Database
from wangban.services import load_spec
from wangban.settings import Settings

TODAY = date(2026, 11, 23)
PERSON = ApplicantFacts(kind="person", age=85, region_code="441900", assurance="real_name")
# Within every static limit (two levels of nesting), quadratic in the applicant's list.
PAIRS = "form.l.all(a, form.l.all(b, a + b >= 0))"


def _rule(name: str, expression: str) -> dict[str, Any]:
    return {"name": name, "expression": expression, "message": "不符合条件"}


def _evaluate(rules: list[dict[str, Any]], form: dict[str, Any]) -> Any:
    context = build_context(form=form, applicant=PERSON, shared={}, today=TODAY)
    return evaluate(compile_rule_set(rules), context, needs_status={})


def test_a_published_nested_map_rule_is_not_evaluated_and_refers() -> None:
    evaluation = _evaluate([_rule("age_80", "applicant.age >= 80"), _rule("boom", NESTED_MAPS)], {})
    assert evaluation.outcome == "refer" and evaluation.deciding_rule == "boom"
    age, boom = evaluation.results
    assert age.result == "true"
    assert boom.result == "error" and boom.over_limit
    assert boom.detail is not None and "嵌套了 3 层" in boom.detail


def test_an_expensive_rule_within_the_static_limits_is_stopped_by_the_budget() -> None:
    rules = [_rule("pairs", PAIRS), _rule("age_80", "applicant.age >= 80")]
    assert compile_rule_set(rules).rules[0].limit_problem is None
    # 300 × 300 pairs: 90 000 evaluations of the body, far beyond the budget.
    evaluation = _evaluate(rules, {"l": list(range(300))})
    assert evaluation.outcome == "refer" and evaluation.deciding_rule == "pairs"
    pairs, age = evaluation.results
    assert pairs.result == "error" and pairs.over_limit
    assert pairs.detail == f"计算量超出预算（{cel_limits.STEP_BUDGET_PER_RULE} 步）"
    assert age.result == "true"  # the next rule has its own budget
    # The same rule on a short list is well within it.
    assert _evaluate(rules, {"l": list(range(10))}).outcome == "approve"


def test_values_doubled_in_a_chain_of_maps_are_charged_by_size() -> None:
    doubling = "[form.s]" + ".map(a, a + a)" * 6 + ".size() == 1"
    assert compile_rule_set([_rule("doubling", doubling)]).rules[0].limit_problem is None
    assert _evaluate([_rule("doubling", doubling)], {"s": "x"}).outcome == "approve"
    # 10 000 characters doubled six times: few nodes, but 640 000 characters built.
    evaluation = _evaluate([_rule("doubling", doubling)], {"s": "x" * 10_000})
    assert evaluation.outcome == "refer" and evaluation.results[0].over_limit


def test_the_rule_set_as_a_whole_has_a_budget() -> None:
    # Each rule on its own stays under its budget (16 × 16 body evaluations)...
    rules = [_rule(f"pairs_{n}", PAIRS) for n in range(10)]
    form = {"l": list(range(16))}
    assert _evaluate(rules[:1], form).outcome == "approve"
    # ...but together they exceed the application's; the rest are stopped, not evaluated.
    evaluation = _evaluate(rules, form)
    assert evaluation.outcome == "refer"
    stopped = [r.name for r in evaluation.results if r.over_limit]
    assert stopped and stopped[-1] == "pairs_9"
    assert evaluation.results[0].result == "true"


def test_dry_run_refuses_costly_rules_naming_them() -> None:
    with pytest.raises(RuleSetInvalid, match="规则“boom”map/filter/all/exists 嵌套了 3 层"):
        dry_run([_rule("boom", NESTED_MAPS)], form={}, applicant=PERSON, shared={}, today=TODAY)
    with pytest.raises(RuleSetInvalid, match="规则“pairs”的计算量超出预算"):
        dry_run(
            [_rule("pairs", PAIRS)],
            form={"l": list(range(300))},
            applicant=PERSON,
            shared={},
            today=TODAY,
        )


def _admin(settings: Settings) -> dict[str, str]:
    identity = Identity(
        subject="admin-1",
        kind="staff",
        roles=frozenset({"catalog_admin"}),
        assurance=AssuranceLevel.REAL_NAME,
    )
    token = InternalTokens.from_settings(settings).issue(identity, issuer="gateway")
    return {"Authorization": f"Bearer {token}"}


async def test_the_dry_run_route_answers_a_problem_naming_the_rule(
    settings: Settings, database: Database
) -> None:
    app = create_service_app(load_spec("approval"), settings, background=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://approval"
        ) as client,
    ):
        headers = _admin(settings)
        nested = await client.post(
            "/rules/dry-run",
            json={"rules": [_rule("boom", NESTED_MAPS)], "applicant": {"age": 85}},
            headers=headers,
        )
        assert nested.status_code == 422, nested.text
        assert nested.json()["type"] == "urn:wangban:problem:invalid-rule-set"
        assert "规则“boom”" in nested.json()["detail"]
        expensive = await client.post(
            "/rules/dry-run",
            json={
                "rules": [_rule("pairs", PAIRS)],
                "form": {"l": list(range(300))},
                "applicant": {"age": 85},
            },
            headers=headers,
        )
        assert expensive.status_code == 422, expensive.text
        assert "规则“pairs”的计算量超出预算" in expensive.json()["detail"]
        fine = await client.post(
            "/rules/dry-run",
            json={"rules": [_rule("pairs", PAIRS)], "form": {"l": [1, 2, 3]}},
            headers=headers,
        )
        assert fine.status_code == 200 and fine.json()["outcome"] == "approve"
