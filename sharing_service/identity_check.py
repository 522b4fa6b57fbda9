"""Identity verification for window intake (人证核验): does the name a clerk typed match the
population register for the ID number?

At a window the applicant is identified by a clerk, not by a login. Before intake looks up
anyone's data for an application filed at a window, it asks here whether the name matches the
register for that ID number. The answer is yes or no and nothing else: no value leaves, and
"no such person in the register" is the same "no" as "another name", so the check cannot be
used to learn whether an ID number exists. Like every lookup it is audited, naming the clerk on
whose behalf it ran: a clerk trying names against a number leaves a trail the citizen and the
auditors see.

The policy is fixed here rather than in ``access_grant``: only a window clerk's own check, of
the name field only, by predicate only. A grant per item would be needed otherwise, for a check
that is the same whatever the item.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import audit, configuration
from sharing_service.lookups import (
    Caller,
    DataUnavailable,
    InvalidLookup,
    LookupDenied,
    ProviderSource,
    Purpose,
    UnknownDataset,
    _validated_subject,
    subject_ref,
)
from sharing_service.providers import ProviderUnavailable, Subject
from wangban import identifiers
from wangban.auth import WINDOW_CLERK
from wangban.crypto import BlindIndex

REGISTER_DATASET: Final = "gongan.huji"
"""The population register (户籍人口信息) the name is checked against."""
PREDICATE: Final = {"name": "name_matches_register", "field": "name", "op": "eq"}


@dataclass(frozen=True)
class IdentityCheck:
    lookup_id: str
    matches: bool


def _normalised(name: str) -> str:
    # Stray (also full-width) spaces are typing noise at a counter, not another name.
    return "".join(name.split())


async def verify_name(
    session: AsyncSession,
    *,
    caller: Caller,
    subject: Subject,
    name: str,
    purpose: Purpose,
    directory: ProviderSource,
    blind_index: BlindIndex,
    now: datetime | None = None,
) -> IdentityCheck:
    """Whether ``name`` is the register's name for ``subject`` (a person). Audited whatever
    the answer; raises :class:`LookupDenied` (audited) unless a window clerk asks, and
    :class:`DataUnavailable` (audited) when the register does not answer."""
    now = now or datetime.now(UTC)
    dataset = await configuration.dataset(session, REGISTER_DATASET)
    if dataset is None:
        raise UnknownDataset(f"共享数据目录中没有数据集 {REGISTER_DATASET}")
    if subject.kind != "person":
        raise InvalidLookup("只能核验自然人的姓名与身份证号码")
    subject = _validated_subject(subject, dataset)
    entry = audit.AuditEntry(
        consumer=caller.consumer,
        requested_by=caller.requested_by,
        subject_kind=subject.kind,
        subject_ref=subject_ref(blind_index, subject),
        subject_masked=identifiers.mask_id(subject.id),
        dataset_code=dataset.code,
        fields=[],
        predicates=[dict(PREDICATE)],
        application_id=purpose.application_id,
        item_code=purpose.item_code,
        outcome="",
        actor_subject=caller.actor_subject,
        actor_department=caller.actor_department,
        actor_role=caller.actor_role,
    )

    async def record(outcome: str, reason: str = "") -> str:
        row = await audit.append(
            session, entry=replace(entry, outcome=outcome, reason=reason), at=now
        )
        return row.id

    if caller.actor_role != WINDOW_CLERK:
        reason = "姓名核验仅限窗口工作人员受理时使用"
        await record("denied", reason)
        raise LookupDenied(reason)
    provider_name = dataset.provider_code
    try:
        provider_name, provider = await directory.provider_for(session, dataset)
        # Only reads so far: no transaction is held while the register answers.
        answer = await provider.fetch(
            dataset=dataset.code, subject=subject, fields=["name"], request_id=str(uuid.uuid4())
        )
    except ProviderUnavailable as exc:
        await record("unavailable", exc.reason)
        raise DataUnavailable(
            f"{provider_name}的数据暂时无法获取，请稍后再试", extra={"dataset": dataset.code}
        ) from exc
    if answer is None:
        return IdentityCheck(
            lookup_id=await record("not_found", "人口登记中无此身份证号码"), matches=False
        )
    registered = str(answer.values.get("name") or "")
    matches = bool(registered) and _normalised(registered) == _normalised(name)
    lookup_id = await record("granted", "姓名一致" if matches else "姓名不一致")
    return IdentityCheck(lookup_id=lookup_id, matches=matches)
