"""Material resolution (免证明): which of an item's materials the applicant need not bring.

For each material of the item version the application is bound to:

* ``shared:<dataset>`` — an existence lookup in that dataset (audited like any lookup); found:
  satisfied, with the lookup id as evidence; not found or not granted: the applicant uploads
  it; provider unavailable: ``unavailable`` (upload or manual check, never a rejection);
* ``certificate:<type>`` — a certificate of that type in the holder's wallet that is in force:
  satisfied, with the certificate id as evidence (一次提交、重复使用);
* ``upload``, ``commitment`` (告知承诺), ``waived`` — unchanged: nothing to look up.

Intake stores the evidence in place of a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import audit, certificates, configuration, lookups
from sharing_service.providers import Subject
from wangban import identifiers
from wangban.crypto import BlindIndex
from wangban.errors import NotFound

MaterialStatus = Literal[
    "satisfied", "upload", "commitment", "waived", "not_found", "denied", "unavailable"
]


class ItemVersionUnknown(NotFound):
    type_slug = "item-version-unknown"
    title = "数据共享服务尚未收到该事项版本"


@dataclass(frozen=True)
class Evidence:
    kind: Literal["lookup", "certificate"]
    id: str


@dataclass(frozen=True)
class MaterialResolution:
    index: int
    name: str
    source: str
    status: MaterialStatus
    message: str
    evidence: Evidence | None = None

    @property
    def needs_upload(self) -> bool:
        return self.status in ("upload", "not_found", "denied", "unavailable")


async def resolve_materials(
    session: AsyncSession,
    *,
    caller: lookups.Caller,
    item_version_id: str,
    applicant: Subject,
    application_id: str | None,
    directory: lookups.ProviderSource,
    blind_index: BlindIndex,
    now: datetime | None = None,
) -> list[MaterialResolution]:
    """Read everything (the item, policy, consent, wallet), ask the departments, then write
    every audit record in one statement: the audit chain's head is locked only once every
    department has answered, never across a provider call, and only for that statement."""
    now = now or datetime.now(UTC)
    item = await configuration.item_version(session, item_version_id)
    if item is None:
        raise ItemVersionUnknown(f"事项版本 {item_version_id} 尚未同步到数据共享服务，请稍后再试")
    purpose = lookups.Purpose(item_code=item.implementing_code, application_id=application_id)
    steps: list[_Step] = []
    for index, material in enumerate(item.materials):
        name, source = str(material.get("name", "")), str(material.get("source", "upload"))
        kind, _, target = source.partition(":")
        if kind == "shared":
            try:
                planned = await lookups.plan_lookup(
                    session,
                    caller=caller,
                    subject=applicant,
                    dataset_code=target,
                    fields=[],
                    predicates=[],
                    purpose=purpose,
                    directory=directory,
                    blind_index=blind_index,
                    now=now,
                )
            except lookups.UnknownDataset:
                steps.append(
                    MaterialResolution(
                        index, name, source, "upload", "共享目录中暂无该数据，请上传"
                    )
                )
            else:
                steps.append(_Lookup(index, name, source, planned))
        elif kind == "certificate":
            ref = lookups.subject_ref(blind_index, applicant)
            found = await certificates.usable_certificate(
                session, holder=ref, type_code=target, today=now.date()
            )
            steps.append(_Wallet(index, name, source, target, ref, found.id if found else None))
        else:
            status: MaterialStatus = (
                "commitment" if kind == "commitment" else "waived" if kind == "waived" else "upload"
            )
            message = {"commitment": "签署告知承诺书即可", "waived": "无需提供"}.get(
                status, "请上传"
            )
            steps.append(MaterialResolution(index, name, source, status, message))
    asked = {
        id(step): await lookups.ask_provider(step.planned)
        for step in steps
        if isinstance(step, _Lookup)
    }
    settled: dict[int, lookups.Settled] = {}
    entries: list[audit.AuditEntry] = []
    for step in steps:
        if isinstance(step, _Lookup):
            settled[id(step)] = lookups.settle(step.planned, asked[id(step)], now=now)
            entries.append(settled[id(step)].entry)
        elif isinstance(step, _Wallet):
            entries.append(_wallet_entry(step, caller=caller, applicant=applicant, purpose=purpose))
    records = iter(await audit.append_all(session, entries=entries, at=now))
    results = []
    for step in steps:
        if isinstance(step, _Lookup):
            results.append(_looked_up(step, settled[id(step)], next(records).id))
        elif isinstance(step, _Wallet):
            next(records)
            results.append(_from_wallet(step))
        else:
            results.append(step)
    return results


@dataclass(frozen=True)
class _Lookup:
    index: int
    name: str
    source: str
    planned: lookups.PlannedLookup


@dataclass(frozen=True)
class _Wallet:
    index: int
    name: str
    source: str
    type_code: str
    holder: str
    certificate_id: str | None


_Step = MaterialResolution | _Lookup | _Wallet


def _looked_up(step: _Lookup, settled: lookups.Settled, lookup_id: str) -> MaterialResolution:
    index, name, source = step.index, step.name, step.source
    try:
        result = settled.outcome(lookup_id)
    except (lookups.LookupDenied, lookups.ConsentRequired) as exc:
        return MaterialResolution(
            index, name, source, "denied", f"无法通过共享获取，请上传（{exc.detail}）"
        )
    except lookups.DataUnavailable:
        return MaterialResolution(
            index, name, source, "unavailable", "数据提供部门暂时无法响应，请上传或由窗口人工核验"
        )
    if not result.found:
        return MaterialResolution(index, name, source, "not_found", "未查询到相关记录，请上传")
    return MaterialResolution(
        index,
        name,
        source,
        "satisfied",
        # Which department's data stands in for the material: what the reviewer relies on.
        f"已通过数据共享获取（{step.planned.provider_name}·{step.planned.dataset.name}），无需提交",
        Evidence(kind="lookup", id=result.lookup_id),
    )


def _wallet_entry(
    step: _Wallet, *, caller: lookups.Caller, applicant: Subject, purpose: lookups.Purpose
) -> audit.AuditEntry:
    """Reading the holder's own wallet for their own application needs no grant, but it is a
    use of their data like any other, so it is audited too."""
    return audit.AuditEntry(
        consumer=caller.consumer,
        requested_by=caller.requested_by,
        subject_kind=applicant.kind,
        subject_ref=step.holder,
        subject_masked=identifiers.mask_id(applicant.id),
        dataset_code=f"certificate:{step.type_code}",
        fields=[],
        predicates=[],
        application_id=purpose.application_id,
        item_code=purpose.item_code,
        outcome="granted" if step.certificate_id else "not_found",
        actor_subject=caller.actor_subject,
        actor_department=caller.actor_department,
        actor_role=caller.actor_role,
    )


def _from_wallet(step: _Wallet) -> MaterialResolution:
    if step.certificate_id is None:
        return MaterialResolution(
            step.index, step.name, step.source, "not_found", "电子证照库中没有可用的证照，请上传"
        )
    return MaterialResolution(
        step.index,
        step.name,
        step.source,
        "satisfied",
        "已调用电子证照，无需提交",
        Evidence(kind="certificate", id=step.certificate_id),
    )


def summary(resolutions: Sequence[MaterialResolution]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resolution in resolutions:
        counts[resolution.status] = counts.get(resolution.status, 0) + 1
    return counts
