"""Prefill (免填): form fields the government already knows come from data sharing.

An item's form schema marks such fields with ``"x-prefill": "<dataset>.<field>"`` (e.g.
``"gongan.huji.registered_address"``). Intake looks them up (as itself, for the item: the access
policy decides) and fills them in with their source; the applicant sees them read-only, and
at submission the government values replace whatever the form carried, so a "read-only" field
cannot be changed by a modified client. A lookup that is refused or fails leaves the field for
the applicant to fill in: prefill is a convenience, never a reason to refuse an application.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts.sharing.api_v1 import Lookups
from intake_service.sharing import SharingUnavailable


@dataclass(frozen=True)
class PrefillTarget:
    form_field: str
    dataset: str
    field: str


@dataclass(frozen=True)
class PrefilledValue:
    value: Any
    dataset: str
    provider: str
    updated_at: str
    lookup_id: str


def targets(schema: Mapping[str, Any] | None) -> list[PrefillTarget]:
    """The form's top-level fields marked for prefill."""
    found = []
    for name, spec in ((schema or {}).get("properties") or {}).items():
        marker = spec.get("x-prefill") if isinstance(spec, Mapping) else None
        if isinstance(marker, str) and "." in marker:
            dataset, _, field = marker.rpartition(".")
            found.append(PrefillTarget(form_field=name, dataset=dataset, field=field))
    return found


async def prefill(
    *,
    schema: Mapping[str, Any] | None,
    lookups: Lookups,
    subject_kind: str,
    subject_id: str,
    item_code: str,
    application_id: str | None,
) -> dict[str, PrefilledValue]:
    """Government values for the form's prefill fields, by form field; one lookup per dataset."""
    wanted: dict[str, list[PrefillTarget]] = {}
    for target in targets(schema):
        wanted.setdefault(target.dataset, []).append(target)
    values: dict[str, PrefilledValue] = {}
    for dataset, fields in wanted.items():
        try:
            answer = await lookups.lookup(
                dataset=dataset,
                subject_kind=subject_kind,
                subject_id=subject_id,
                fields=sorted({t.field for t in fields}),
                item_code=item_code,
                application_id=application_id,
            )
        except SharingUnavailable:
            continue  # prefill is a convenience: without it the applicant types the values
        if answer.status != "found":
            continue  # refused, failed or no record: the applicant fills these in
        for target in fields:
            attribute = answer.attributes.get(target.field)
            if attribute is None:
                continue
            values[target.form_field] = PrefilledValue(
                value=attribute["value"],
                dataset=dataset,
                provider=str(attribute.get("provider", "")),
                updated_at=str(attribute.get("updated_at", "")),
                lookup_id=answer.lookup_id or "",
            )
    return values


def apply_to_form(
    form: Mapping[str, Any], values: Mapping[str, PrefilledValue]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form with government values in place, and the record of their sources."""
    merged = dict(form)
    sources = {}
    for name, prefilled in values.items():
        merged[name] = prefilled.value
        sources[name] = {
            "dataset": prefilled.dataset,
            "provider": prefilled.provider,
            "updated_at": prefilled.updated_at,
            "lookup_id": prefilled.lookup_id,
        }
    return merged, sources
