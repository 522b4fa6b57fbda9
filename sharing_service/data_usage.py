"""谁用了我的数据: the lookups of a citizen's data, as the citizen reads them.

Each record of the lookup audit that concerns the citizen becomes a line that names who used
the data (a department's staff role, "本人", or the machine step: "自动审批（秒批）"), the
dataset and its provider, and the fields read in the dataset catalogue's words
(本市名下不动产数量, not ``property_count``). Nothing here decides access: the records are the
audit's, read by the citizen's own reference.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from sharing_service import repository
from sharing_service.models import Dataset
from sharing_service.schemas import DataUseOut, DataUsePage
from wangban.auth import APPROVER, AUDITOR, REVIEWER, WINDOW_CLERK

ROLE_LABELS: dict[str, str] = {
    WINDOW_CLERK: "窗口工作人员",
    REVIEWER: "审批人员",
    APPROVER: "审批人员",
    AUDITOR: "审计人员",
    "citizen": "本人",
    "company": "本单位",
}
_MACHINE_LABELS = {"approval": "自动审批（秒批）", "intake": "网上受理系统"}
CERTIFICATE_LIBRARY = "电子证照库"


def used_by(consumer: str, department: str | None, role: str | None) -> str:
    """Who used the data, as the citizen reads it: "东莞市人社局 窗口工作人员", "本人",
    "自动审批（秒批）" — never an internal service name when a person is behind it."""
    if role is not None:
        label = ROLE_LABELS.get(role, "工作人员")
        return f"{department} {label}" if department else label
    return _MACHINE_LABELS.get(consumer, consumer)


def field_titles(dataset: Dataset | None, fields: Sequence[str]) -> list[str]:
    """The catalogue's names for the fields read (a citizen does not read ``property_count``);
    a field the catalogue no longer lists keeps its code."""
    listed = dataset.fields if dataset else []
    titles = {str(f["name"]): str(f.get("title") or f["name"]) for f in listed}
    return [titles.get(name, name) for name in fields]


def _certificate_source(code: str) -> str:
    """A certificate read from the library instead of a department's dataset."""
    return "电子证照：" + code.removeprefix("certificate:")


async def page(
    session: AsyncSession, *, subject_ref: str, limit: int, before: int | None
) -> DataUsePage:
    """The citizen's lookups, newest first, ``limit`` at a time (``before``: the ``seq`` the
    previous page ended at)."""
    rows = await repository.audit_records_of_subject(
        session, subject_ref=subject_ref, limit=limit, before_seq=before
    )
    datasets = {d.code: d for d in await repository.datasets(session)}
    providers = {p.code: p.name for p in await repository.providers(session)}
    names = await repository.item_names(session, [r.item_code for r in rows])
    items = []
    for row in rows:
        dataset = datasets.get(row.dataset_code)
        items.append(
            DataUseOut(
                seq=row.seq,
                at=row.at,
                used_by=used_by(row.consumer, row.actor_department, row.actor_role),
                department=row.actor_department,
                role=ROLE_LABELS.get(row.actor_role) if row.actor_role else None,
                dataset=row.dataset_code,
                dataset_name=dataset.name if dataset else _certificate_source(row.dataset_code),
                provider=(
                    providers.get(dataset.provider_code, "") if dataset else CERTIFICATE_LIBRARY
                ),
                fields=list(row.fields),
                field_titles=field_titles(dataset, row.fields),
                predicates=[str(p.get("name", "")) for p in row.predicates],
                application_id=row.application_id,
                item_code=row.item_code,
                item_name=names.get(row.item_code),
                outcome=row.outcome,
            )
        )
    return DataUsePage(items=items, next_before=rows[-1].seq if len(rows) == limit else None)
