"""Request and response bodies of the approval service's API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=1000)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=2, max_length=1000)


class CorrectionIn(ReasonIn):
    materials: list[str] = Field(default_factory=list, max_length=50)


class SuspendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    procedure: Literal["现场核查", "专家评审", "听证", "检验检测", "公示"]
    comment: str = Field(default="", max_length=1000)


class CaseSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    application_id: str
    item_code: str
    department: str
    status: str
    step: str
    steps: list[dict[str, Any]]
    assignee: str | None
    submitted_at: datetime
    accepted_at: datetime | None
    due_date: date | None
    due_provisional: bool
    stopped_days: int
    deadline_light: Literal["green", "yellow", "red"] | None = None
    """The queue's 红黄绿灯 (None while the clock does not run)."""
    working_days_left: int | None = None
    """Working days up to the due date, negative once overdue."""


class DecisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    outcome: str
    reason: str
    rule_set_hash: str | None
    rule_results: list[dict[str, Any]]
    lookup_ids: list[str]
    elapsed_ms: float | None
    decided_by: str
    decided_at: datetime


class ActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    comment: str


class CaseOut(CaseSummary):
    form: dict[str, Any]
    decisions: list[DecisionOut]
    actions: list[ActionOut]


class DryRunApplicant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["person", "company"] = "person"
    age: int | None = Field(default=None, ge=0, le=150)
    region_code: str = Field(default="441900", pattern=r"^[0-9]{6}$")
    assurance: Literal["wechat", "real_name", "real_person"] = "real_person"


class DryRunIn(BaseModel):
    """A rule set and a sample case: ``shared`` maps each dataset to its record, ``null`` for
    no record, or the string ``"unavailable"``."""

    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] = Field(max_length=50)
    form: dict[str, Any] = Field(default_factory=dict)
    applicant: DryRunApplicant = Field(default_factory=DryRunApplicant)
    shared: dict[str, dict[str, Any] | Literal["unavailable"] | None] = Field(default_factory=dict)
    today: date | None = None


class RuleResultOut(BaseModel):
    name: str
    result: str
    message: str
    detail: str | None


class EvaluationOut(BaseModel):
    outcome: str
    reason: str
    deciding_rule: str | None
    results: list[RuleResultOut]
    missing: dict[str, str]
    rule_set_digest: str
    undeclared_needs: dict[str, list[str]]


class ReplayIn(BaseModel):
    """A proposed rule set of one item, to replay on its recent decided cases."""

    model_config = ConfigDict(extra="forbid")

    item_code: str = Field(min_length=1, max_length=64, description="实施编码")
    rules: list[dict[str, Any]] = Field(max_length=50)
