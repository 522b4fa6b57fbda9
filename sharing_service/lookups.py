"""Data lookups: policy, consent, minimisation, predicates and the audit record of each.

A lookup names a subject, a dataset, the fields wanted and/or predicates to test, and its
purpose (the item, and the application when there is one: X-Road's ``issue``). The rules:

* anything the access policy does not grant to this consumer for this item is denied; a field
  granted for verification only can be tested by a predicate, never returned;
* where the grant says so, the subject's consent for the item must be in force;
* only the granted fields asked for are returned, each stamped with where it came from and
  when the department last updated it (government-verified, as Myinfo marks it);
* a predicate answers true/false (or null when the department has no record) and nothing else;
* a provider failure is "unavailable", never "not found" and never "false";
* every lookup, whatever its outcome, appends a record to the audit chain.

Invalid requests (unknown dataset or field, malformed ID number) are not lookups: they are
refused before anything is asked or written.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.sharing.api_v1 import PROVIDER_UNAVAILABLE, PredicateOp
from sharing_service import audit, configuration, repository
from sharing_service.models import AccessGrant, Dataset
from sharing_service.providers import (
    DataProvider,
    ProviderRecord,
    ProviderUnavailable,
    Subject,
)
from wangban import identifiers
from wangban.crypto import BlindIndex
from wangban.errors import Forbidden, NotFound, ServiceUnavailable, ValidationFailed

# --- errors -------------------------------------------------------------------------------------


class UnknownDataset(NotFound):
    type_slug = "unknown-dataset"
    title = "共享数据目录中没有该数据集"


class InvalidLookup(ValidationFailed):
    type_slug = "invalid-lookup"
    title = "数据查询请求有误"


class LookupDenied(Forbidden):
    """Refused by the access policy. The refusal itself is audited, hence ``keeps_changes``."""

    type_slug = "lookup-denied"
    title = "无权查询该数据"
    keeps_changes = True


class ConsentRequired(Forbidden):
    type_slug = "consent-required"
    title = "需要数据主体授权"
    keeps_changes = True


class DataUnavailable(ServiceUnavailable):
    """The department's system did not answer: the caller must fall back to manual handling
    (or ask the applicant for the document), never treat it as "no record"."""

    type_slug = PROVIDER_UNAVAILABLE  # the callers' contract: "the department's system failed"
    title = "数据提供部门暂时无法响应"
    keeps_changes = True


# --- predicates ---------------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "in": lambda value, options: value in options,
    "contains": lambda value, item: item in value,
    "starts_with": lambda value, prefix: isinstance(value, str) and value.startswith(prefix),
}

DERIVED_FIELDS: dict[str, str] = {"age": "birth_date"}
"""Fields computed by the sharing service from a dataset field (``age`` from ``birth_date``),
so "aged 80 or over" can be verified without disclosing the date of birth."""


@dataclass(frozen=True)
class Predicate:
    """A yes/no question about the record: ``age ge 80``, ``marital_status eq 已婚``,
    ``properties any region_code starts_with 4419`` (with ``key``: true when any element of
    a list field has a ``key`` that satisfies the test)."""

    name: str
    field: str
    op: PredicateOp
    value: Any = None
    key: str | None = None

    @property
    def source_field(self) -> str:
        return DERIVED_FIELDS.get(self.field, self.field)

    def describe(self) -> dict[str, Any]:
        """For the audit record: what was asked, without the record's answer."""
        described: dict[str, Any] = {"name": self.name, "field": self.field, "op": self.op}
        if self.key is not None:
            described["key"] = self.key
        return described

    def test(self, record: Mapping[str, Any], *, today: date) -> bool:
        value = _field_value(record, self.field, today=today)
        if self.op == "exists":
            return value is not None and value != "" and value != []
        if value is None:
            return False
        if self.key is not None:
            if not isinstance(value, list):
                return False
            return any(
                isinstance(element, Mapping) and self._compare(element.get(self.key))
                for element in value
            )
        return self._compare(value)

    def _compare(self, value: Any) -> bool:
        try:
            return bool(_COMPARE[self.op](value, self.value))
        except TypeError:
            return False  # e.g. comparing a string with a number: not satisfied


def _field_value(record: Mapping[str, Any], name: str, *, today: date) -> Any:
    if name == "age":
        born = record.get("birth_date")
        if not born:
            return None
        birth = date.fromisoformat(str(born))
        return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    return record.get(name)


# --- requests and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class Purpose:
    item_code: str
    application_id: str | None = None


@dataclass(frozen=True)
class Caller:
    consumer: str
    """The consuming service or department the policy knows (``approval``, ``intake`` …)."""
    requested_by: str
    """The identity subject that made the request, for the audit record."""
    actor_subject: str | None = None
    """The human on whose behalf it asked (verified from a signed token, never a body field);
    None when a service asks on its own account (秒批)."""
    actor_department: str | None = None
    actor_role: str | None = None


@dataclass(frozen=True)
class Attribute:
    value: Any
    source: Literal["government"]
    provider: str
    dataset: str
    updated_at: datetime


@dataclass
class LookupResult:
    lookup_id: str
    found: bool
    attributes: dict[str, Attribute] = field(default_factory=dict)
    predicates: dict[str, bool | None] = field(default_factory=dict)


class ProviderSource(Protocol):
    """Gives the provider that serves a dataset (built from the registry, kept per process)."""

    async def provider_for(
        self, session: AsyncSession, dataset: Dataset
    ) -> tuple[str, DataProvider]:
        """The provider's display name and the provider itself."""
        ...


# --- the lookup ---------------------------------------------------------------------------------


def _validated_subject(subject: Subject, dataset: Dataset) -> Subject:
    if subject.kind not in dataset.subject_kinds:
        kinds = "、".join({"person": "自然人", "company": "法人"}[k] for k in dataset.subject_kinds)
        raise InvalidLookup(f"数据集「{dataset.name}」只能按{kinds}查询")
    try:
        if subject.kind == "person":
            return Subject(kind="person", id=identifiers.validate_resident_id(subject.id))
        return Subject(kind="company", id=identifiers.validate_uscc(subject.id))
    except identifiers.InvalidIdentifier as exc:
        raise InvalidLookup(str(exc)) from exc


def _check_fields(dataset: Dataset, fields: Sequence[str], predicates: Sequence[Predicate]) -> None:
    known = {f["name"] for f in dataset.fields}
    unknown = [name for name in fields if name not in known]
    for predicate in predicates:
        if predicate.source_field not in known:
            unknown.append(predicate.field)
        if predicate.op not in _COMPARE and predicate.op != "exists":
            raise InvalidLookup(f"不支持的判断方式：{predicate.op}")
    if unknown:
        raise InvalidLookup(f"数据集「{dataset.name}」没有这些字段：{'、'.join(unknown)}")
    names = [p.name for p in predicates]
    if len(set(names)) != len(names):
        raise InvalidLookup("判断条件的名称不能重复")


def _refusal(
    grant: AccessGrant | None, fields: Sequence[str], predicates: Sequence[Predicate]
) -> str | None:
    """Why the policy refuses this request, or None when everything asked is granted."""
    if grant is None:
        return "访问策略未授权该调用方为该事项查询此数据集"
    not_disclosable = [name for name in fields if name not in grant.disclose_fields]
    verifiable = set(grant.disclose_fields) | set(grant.verify_fields)
    not_verifiable = [p.field for p in predicates if p.source_field not in verifiable]
    parts = []
    if not_disclosable:
        parts.append(f"未授权获取字段：{'、'.join(not_disclosable)}")
    if not_verifiable:
        parts.append(f"未授权核验字段：{'、'.join(not_verifiable)}")
    return "；".join(parts) or None


def subject_ref(blind_index: BlindIndex, subject: Subject) -> str:
    """How a subject is recorded: a keyed hash, never the ID number itself."""
    if subject.kind == "person":
        return blind_index.resident_id(subject.id)
    return blind_index.compute(subject.id.upper(), purpose="uscc")


@dataclass(frozen=True)
class PlannedLookup:
    """A lookup decided on what the database says (dataset, policy, consent, provider), before
    the department is asked: either a refusal to record or a question for the provider."""

    dataset: Dataset
    subject: Subject
    fields: list[str]
    predicates: list[Predicate]
    entry: audit.AuditEntry
    provider_name: str
    provider: DataProvider | None = None
    refusal: LookupDenied | ConsentRequired | None = None
    unavailable: str | None = None
    """Why no provider can be asked (not enabled, no URL): recorded as "unavailable"."""


@dataclass(frozen=True)
class Asked:
    """What the department answered: a record, None for no record, or why it could not."""

    record: ProviderRecord | None = None
    unavailable: str | None = None


async def plan_lookup(
    session: AsyncSession,
    *,
    caller: Caller,
    subject: Subject,
    dataset_code: str,
    fields: Sequence[str],
    predicates: Sequence[Predicate],
    purpose: Purpose,
    directory: ProviderSource,
    blind_index: BlindIndex,
    now: datetime,
) -> PlannedLookup:
    """Reads only (autocommit until the session first writes). Raises :class:`UnknownDataset`
    and :class:`InvalidLookup` for requests that are not lookups (nothing is recorded)."""
    dataset = await configuration.dataset(session, dataset_code)
    if dataset is None:
        raise UnknownDataset(f"共享数据目录中没有数据集 {dataset_code}")
    subject = _validated_subject(subject, dataset)
    fields = list(dict.fromkeys(fields))
    _check_fields(dataset, fields, predicates)

    ref = subject_ref(blind_index, subject)
    planned = PlannedLookup(
        dataset=dataset,
        subject=subject,
        fields=fields,
        predicates=list(predicates),
        provider_name=dataset.provider_code,
        entry=audit.AuditEntry(
            consumer=caller.consumer,
            requested_by=caller.requested_by,
            subject_kind=subject.kind,
            subject_ref=ref,
            subject_masked=identifiers.mask_id(subject.id),
            dataset_code=dataset.code,
            fields=fields,
            predicates=[p.describe() for p in predicates],
            application_id=purpose.application_id,
            item_code=purpose.item_code,
            outcome="",
            actor_subject=caller.actor_subject,
            actor_department=caller.actor_department,
            actor_role=caller.actor_role,
        ),
    )
    grant = await configuration.grant(
        session, consumer=caller.consumer, dataset_code=dataset.code, item_code=purpose.item_code
    )
    refusal = _refusal(grant, fields, predicates)
    if refusal is not None:
        return replace(planned, refusal=LookupDenied(refusal))
    assert grant is not None
    if grant.consent_required:
        consent = await repository.valid_consent(
            session,
            subject_ref=ref,
            item_code=purpose.item_code,
            application_id=purpose.application_id,
            at=now,
        )
        if consent is None:
            reason = "该事项查询此数据需要数据主体本人授权，未找到有效的授权"
            return replace(planned, refusal=ConsentRequired(reason))
    try:
        provider_name, provider = await directory.provider_for(session, dataset)
    except ProviderUnavailable as exc:
        return replace(planned, unavailable=exc.reason)
    return replace(planned, provider_name=provider_name, provider=provider)


async def ask_provider(planned: PlannedLookup) -> Asked:
    """The department's answer, asked with no transaction of ours open: a provider may take up
    to its deadline, and a transaction held meanwhile would hold a pooled connection and, once
    the audit chain's head is locked, every other lookup of the service (the HTTP provider
    checks it: ``wangban.db.check_no_transaction``)."""
    if planned.refusal is not None or planned.provider is None:
        return Asked(unavailable=planned.unavailable)
    wanted = list(dict.fromkeys([*planned.fields, *(p.source_field for p in planned.predicates)]))
    try:
        record = await planned.provider.fetch(
            dataset=planned.dataset.code,
            subject=planned.subject,
            fields=wanted,
            request_id=str(uuid.uuid4()),
        )
    except ProviderUnavailable as exc:
        return Asked(unavailable=exc.reason)
    return Asked(record=record)


@dataclass(frozen=True)
class Settled:
    """A lookup's outcome before its audit record is written: the record to append, then
    what the caller gets once it is (the result, or the refusal or failure to raise)."""

    entry: audit.AuditEntry
    result: LookupResult | None = None
    problem: LookupDenied | ConsentRequired | DataUnavailable | None = None

    def outcome(self, lookup_id: str) -> LookupResult:
        """The result under the written record's id; raises the refusal or failure."""
        if self.problem is not None:
            raise self.problem
        assert self.result is not None
        return replace(self.result, lookup_id=lookup_id)


def settle(planned: PlannedLookup, asked: Asked, *, now: datetime) -> Settled:
    """What the lookup came to, as its audit record states it and the caller receives it."""

    def entry(outcome: str, reason: str = "") -> audit.AuditEntry:
        return replace(planned.entry, outcome=outcome, reason=reason)

    if planned.refusal is not None:
        return Settled(entry("denied", planned.refusal.detail or ""), problem=planned.refusal)
    if asked.unavailable is not None:
        return Settled(
            entry("unavailable", asked.unavailable),
            problem=DataUnavailable(
                f"{planned.provider_name}的数据暂时无法获取，请稍后再试或转人工办理",
                extra={"dataset": planned.dataset.code},
            ),
        )
    answer = asked.record
    if answer is None:
        return Settled(
            entry("not_found"),
            LookupResult(
                lookup_id="", found=False, predicates={p.name: None for p in planned.predicates}
            ),
        )
    today = now.date()
    return Settled(
        entry("granted"),
        LookupResult(
            lookup_id="",
            found=True,
            attributes={
                name: Attribute(
                    value=answer.values[name],
                    source="government",
                    provider=planned.provider_name,
                    dataset=planned.dataset.code,
                    updated_at=answer.updated_at,
                )
                for name in planned.fields
                if name in answer.values
            },
            predicates={p.name: p.test(answer.values, today=today) for p in planned.predicates},
        ),
    )


async def record_lookup(
    session: AsyncSession, planned: PlannedLookup, asked: Asked, *, now: datetime
) -> LookupResult:
    """The audit record of the lookup (one statement, committed on its own when the session
    holds no transaction: :func:`sharing_service.audit.append_all`), then its result. Raises
    the planned refusal, or :class:`DataUnavailable`, once recorded."""
    settled = settle(planned, asked, now=now)
    row = await audit.append(session, entry=settled.entry, at=now)
    return settled.outcome(row.id)


async def perform_lookup(
    session: AsyncSession,
    *,
    caller: Caller,
    subject: Subject,
    dataset_code: str,
    fields: Sequence[str],
    predicates: Sequence[Predicate],
    purpose: Purpose,
    directory: ProviderSource,
    blind_index: BlindIndex,
    now: datetime | None = None,
) -> LookupResult:
    """One audited lookup: read (policy, consent, provider) → ask the department → record.
    Raises :class:`LookupDenied`, :class:`ConsentRequired` or :class:`DataUnavailable` after
    flushing the audit record of the refusal or failure."""
    now = now or datetime.now(UTC)
    planned = await plan_lookup(
        session,
        caller=caller,
        subject=subject,
        dataset_code=dataset_code,
        fields=fields,
        predicates=predicates,
        purpose=purpose,
        directory=directory,
        blind_index=blind_index,
        now=now,
    )
    return await record_lookup(session, planned, await ask_provider(planned), now=now)
