"""Replaying a proposed 秒批 rule set on an item's recent decided cases, for the catalogue's
four-eyes review: what the new rules would have decided, next to what was decided.

What a case keeps is enough for most of a rule's inputs: the form, the applicant's kind, age and
region. The shared data looked up for a decision is not kept (only the lookup ids, which sharing
audits), so rules that read a shared dataset see it as *unavailable* here and refer (转人工):
the summary says so rather than guess a record. Pure apart from the one query; nothing personal
leaves it (application ids and outcomes only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from approval_service import cases, repository, rules
from approval_service.models import Case
from wangban.calendar import china_date
from wangban.crypto import FieldCipher

RECENT_CASES: Final = 50
"""How many of the item's most recently decided cases a replay looks at."""

_ACTUAL: Final = {"approved": "approve", "denied": "deny"}

SHARED_DATA_NOTE: Final = "案件不保存共享数据本身：读取共享数据的规则按“数据暂不可用”处理（转人工）"


@dataclass(frozen=True)
class ReplayedCase:
    application_id: str
    decided_at: str
    actual: str
    """``approve`` or ``deny``: how the case ended (by machine or by a person)."""
    actual_auto: str | None
    """What 秒批 answered for it, if it was asked."""
    would: str
    """What the proposed rules answer on what the case stored."""


@dataclass(frozen=True)
class Replay:
    cases: list[ReplayedCase]
    shared_data_unavailable: list[str]
    """Datasets the proposed rules read, which a replay cannot see."""

    def summary(self) -> dict[str, Any]:
        would = Counter(c.would for c in self.cases)
        actual = Counter(c.actual for c in self.cases)
        changed = [c for c in self.cases if c.would != c.actual]
        return {
            "status": "done",
            "cases": len(self.cases),
            "window": RECENT_CASES,
            "would": {k: would.get(k, 0) for k in ("approve", "deny", "refer")},
            "actual": {k: actual.get(k, 0) for k in ("approve", "deny")},
            "changed": len(changed),
            "newly_approved": sum(c.would == "approve" and c.actual == "deny" for c in changed),
            "newly_denied": sum(c.would == "deny" and c.actual == "approve" for c in changed),
            "shared_data_unavailable": self.shared_data_unavailable,
            "note": SHARED_DATA_NOTE if self.shared_data_unavailable else "",
            "changes": [
                {
                    "application_id": c.application_id,
                    "decided_at": c.decided_at,
                    "actual": c.actual,
                    "actual_auto": c.actual_auto,
                    "would": c.would,
                }
                for c in changed
            ],
        }


async def replay(
    session: AsyncSession,
    *,
    item_code: str,
    rule_set: Sequence[Mapping[str, Any]],
    cipher: FieldCipher,
    department: str | None,
    limit: int = RECENT_CASES,
) -> Replay:
    """The proposed ``rule_set`` evaluated on the item's ``limit`` most recently decided cases
    (of ``department`` only, unless None: a platform caller). Raises
    :class:`rules.RuleSetInvalid` for a rule set that does not compile."""
    compiled = rules.compile_rule_set(rule_set)
    decided = await repository.recent_decided_cases(
        session, item_code=item_code, department=department, limit=limit
    )
    unavailable: dict[str, rules.SharedData] = dict.fromkeys(compiled.datasets, rules.UNAVAILABLE)
    replayed: list[ReplayedCase] = []
    for case, auto_outcome in decided:
        assert case.decided_at is not None
        context = rules.build_context(
            form=cases.clear_form(case, cipher),  # in memory only: personal fields at rest
            applicant=_applicant(case),
            shared=unavailable,
            today=china_date(case.decided_at),
        )
        evaluation = rules.evaluate(
            compiled, context, needs_status=rules.needs_status_of(unavailable)
        )
        replayed.append(
            ReplayedCase(
                application_id=case.application_id,
                decided_at=case.decided_at.isoformat(),
                actual=_ACTUAL[case.status],
                actual_auto=auto_outcome,
                would=evaluation.outcome,
            )
        )
    return Replay(cases=replayed, shared_data_unavailable=sorted(compiled.datasets))


def _applicant(case: Case) -> rules.ApplicantFacts:
    # As the automatic decision builds it (cases.decide_automatically).
    return rules.ApplicantFacts(
        kind="company" if case.applicant_kind == "company" else "person",
        age=case.applicant_age,
        region_code=case.applicant_region or "",
        assurance="real_person",
    )
