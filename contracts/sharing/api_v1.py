"""The sharing service's internal HTTP API (version 1), once for the service and its callers:
material resolution (``POST /materials/resolve``, intake), lookups (``POST /lookups``, intake's
prefill and approval's 秒批 rules) and the window's identity check (``POST /identity/verify``,
intake). The request models are the ones sharing's routes validate (strictly: a field this
version lacks is refused), so a caller cannot send what the service would not read; the answers
are read here, in one place, tolerantly (fields this code does not know are ignored). Each
caller's client (``intake_service/sharing.py``, ``approval_service/sharing.py``) sends them with
the kit's ``wangban.http.ServiceCalls`` and decides what an unavailable service means to it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

RESOLVE_PATH: Final = "/materials/resolve"
LOOKUPS_PATH: Final = "/lookups"
IDENTITY_VERIFY_PATH: Final = "/identity/verify"

PROVIDER_UNAVAILABLE: Final = "provider-unavailable"
"""The problem type (its last segment) with which sharing says that the department's system
failed, not sharing itself: the caller treats the data as unavailable (a 秒批 case goes to a
person, a material is asked of the applicant) instead of waiting for sharing to come back."""

PredicateOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "contains", "starts_with", "exists"]


# --- requests -----------------------------------------------------------------------------------


class Subject(BaseModel):
    """Whose data: a person by ID number, a company by its unified social credit code."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["person", "company"]
    id: str = Field(min_length=18, max_length=18, description="居民身份证号码或统一社会信用代码")

    def __repr__(self) -> str:
        return f"Subject(kind={self.kind!r}, id=<hidden>)"


class Predicate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")
    field: str = Field(min_length=1, max_length=64, description="字段名；age 由 birth_date 计算")
    op: PredicateOp
    value: Any = None
    key: str | None = Field(default=None, max_length=64, description="列表字段中元素的属性名")


class Purpose(BaseModel):
    """What the data is for: the item, and the application when there is one already."""

    model_config = ConfigDict(extra="forbid")

    item_code: str = Field(min_length=1, max_length=64, description="事项实施编码")
    application_id: str | None = Field(default=None, max_length=64)


class LookupRequest(BaseModel):
    """A lookup: only the fields asked for (data minimisation), or predicates on them."""

    model_config = ConfigDict(extra="forbid")

    subject: Subject
    dataset: str = Field(min_length=1, max_length=64)
    fields: list[str] = Field(default_factory=list, max_length=50)
    predicates: list[Predicate] = Field(default_factory=list, max_length=20)
    purpose: Purpose


class ResolutionRequest(BaseModel):
    """Which materials of the item version the applicant need not bring (免证明)."""

    model_config = ConfigDict(extra="forbid")

    item_version_id: str = Field(min_length=1, max_length=64)
    applicant: Subject
    application_id: str | None = Field(default=None, max_length=64)


class IdentityCheckRequest(BaseModel):
    """Window intake: does this name match the population register for this ID number?"""

    model_config = ConfigDict(extra="forbid")

    subject: Subject
    name: str = Field(min_length=1, max_length=100)
    purpose: Purpose

    def __repr__(self) -> str:
        return "IdentityCheckRequest(<hidden>)"


# --- answers ------------------------------------------------------------------------------------


@dataclass
class SharedResolution:
    """The sharing service's answer for one material (see sharing's ``/materials/resolve``)."""

    index: int
    status: str
    evidence_kind: str | None = None
    evidence_id: str | None = None
    message: str = ""

    @classmethod
    def from_answer(cls, material: Mapping[str, Any]) -> SharedResolution:
        """One entry of the answer's ``materials``."""
        evidence = material.get("evidence") or {}
        return cls(
            index=int(material["index"]),
            status=str(material["status"]),
            evidence_kind=evidence.get("kind"),
            evidence_id=evidence.get("id"),
            message=str(material.get("message", "")),
        )


@dataclass(frozen=True)
class LookupAnswer:
    """One lookup's outcome. ``unavailable``: the provider or the sharing service could not
    answer; ``refused``: the access policy or a missing consent said no. Neither means "no
    record" (that is ``not_found``)."""

    status: Literal["found", "not_found", "unavailable", "refused"]
    lookup_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    """Field → ``{"value", "source", "provider", "dataset", "updated_at"}``."""

    def value(self, name: str) -> Any:
        attribute = self.attributes.get(name)
        return None if attribute is None else attribute.get("value")

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> LookupAnswer:
        """A ``200`` answer of ``POST /lookups``: found or not."""
        return cls(
            status="found" if body.get("found") else "not_found",
            lookup_id=body.get("lookup_id"),
            attributes=dict(body.get("attributes") or {}),
        )

    @classmethod
    def from_response(cls, status: int, body: Any) -> LookupAnswer | None:
        """What an answer of ``POST /lookups`` (its status and JSON body) means to the caller:
        found or not (200); refused (401, 403: the access policy or a missing consent);
        unavailable when the department's system failed (:data:`PROVIDER_UNAVAILABLE`) or the
        question was not one sharing could answer. ``None`` when sharing itself failed (any
        other 5xx: down, restarting, overloaded): the caller raises its own unavailability and
        asks again later, since a restart of our own service must not send every 秒批 case in
        flight to a person."""
        if status == 200 and isinstance(body, Mapping):
            return cls.from_answer(body)
        if status in (401, 403):
            return cls(status="refused")
        if status >= 500 and not is_provider_unavailable(body):
            return None
        return cls(status="unavailable")


def is_provider_unavailable(problem: Any) -> bool:
    """Sharing answered with a problem saying that the department's system is what failed."""
    problem_type = problem.get("type") if isinstance(problem, Mapping) else None
    return isinstance(problem_type, str) and problem_type.endswith(f":{PROVIDER_UNAVAILABLE}")


class Lookups(Protocol):
    """What asks sharing for a lookup, as the callers' rules and prefill see it: each caller's
    sharing client (``POST`` :data:`LOOKUPS_PATH`), or a stand-in in a unit test."""

    async def lookup(
        self,
        *,
        dataset: str,
        subject_kind: str,
        subject_id: str,
        fields: list[str],
        item_code: str,
        application_id: str | None,
    ) -> LookupAnswer: ...
