"""Who applies, through which channel, with what: a new application (a draft), its applicant
checked and its personal data encrypted."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from intake_service.applications.errors import InvalidApplicant, InvalidForm
from intake_service.applications.forms import STORED_FORM_CONTEXT
from intake_service.events import (
    HOLDER_CONTEXT,
)
from intake_service.models import Application, ItemVersionCopy
from wangban import identifiers, personal_fields
from wangban.crypto import BlindIndex, FieldCipher


@dataclass(frozen=True)
class Applicant:
    """Who the application is for. ``subject`` is the opaque identity; the ID number and
    name are needed for data sharing and the certificate and are stored encrypted."""

    subject: str
    kind: Literal["person", "company"]
    id_number: str
    name: str

    def __repr__(self) -> str:
        return f"Applicant(subject={self.subject!r}, kind={self.kind!r})"


@dataclass(frozen=True)
class Channel:
    name: Literal["mini_program", "web", "kiosk", "window"]
    window: str | None = None
    region: str | None = None
    clerk: str | None = None
    agent: str | None = None


@dataclass(frozen=True)
class MaterialChoice:
    """What the applicant offers for material ``index``: an uploaded or library file, or a
    commitment (告知承诺)."""

    index: int
    file_id: str | None = None
    commitment: bool = False


@dataclass
class Keys:
    cipher: FieldCipher
    blind_index: BlindIndex


def validated_applicant(applicant: Applicant) -> Applicant:
    """The applicant with a checked, normalised ID number or credit code."""
    try:
        number = (
            identifiers.validate_resident_id(applicant.id_number)
            if applicant.kind == "person"
            else identifiers.validate_uscc(applicant.id_number)
        )
    except identifiers.InvalidIdentifier as exc:
        raise InvalidApplicant(str(exc)) from exc
    return replace(applicant, id_number=number)


def new_application(
    *,
    item: ItemVersionCopy,
    applicant: Applicant,
    form: Mapping[str, Any],
    channel: Channel,
    keys: Keys,
    now: datetime,
    kind: str = "single",
    parent_id: str | None = None,
    idempotency_key: str | None = None,
    idempotency_fingerprint: str | None = None,
    form_schema: Mapping[str, Any] | None = None,
) -> Application:
    """A draft; ``form_schema`` is the schema of ``form`` when it is not the item's own (a
    bundle's combined form): its personal fields are stored encrypted."""
    applicant = validated_applicant(applicant)
    content = item.content
    if personal_fields.has_envelope(form):
        # The marker is how stored forms say "encrypted": a submitted one would be read back
        # as ciphertext that does not decrypt.
        raise InvalidForm(f"申请表不能包含保留字段 {personal_fields.MARKER}")
    return Application(
        id=str(uuid.uuid4()),
        kind=kind,
        parent_id=parent_id,
        item_version_id=item.version_id,
        bundle_version_id=None,
        item_code=item.implementing_code,
        item_name=item.name,
        department=item.department,
        region_code=item.region_code,
        applicant_subject=applicant.subject,
        applicant_kind=applicant.kind,
        applicant_ref=_applicant_ref(keys.blind_index, applicant),
        applicant_id_enc=keys.cipher.encrypt(applicant.id_number, context=HOLDER_CONTEXT),
        applicant_name_enc=keys.cipher.encrypt(applicant.name, context=HOLDER_CONTEXT),
        agent_subject=channel.agent,
        channel=channel.name,
        accepting_window=channel.window,
        accepting_region=channel.region,
        form=personal_fields.seal(
            form,
            form_schema if form_schema is not None else content.get("form_schema"),
            cipher=keys.cipher,
            context=STORED_FORM_CONTEXT,
        ),
        status="draft",
        status_reason="",
        idempotency_key=idempotency_key,
        idempotency_fingerprint=idempotency_fingerprint,
        committed_days=content.get("committed_days"),
        online_depth=content.get("online_depth"),
        visits=content.get("visits"),
        auto_approval=bool(content.get("auto_approval")),
        created_at=now,
    )


def _applicant_ref(blind_index: BlindIndex, applicant: Applicant) -> str:
    if applicant.kind == "person":
        return blind_index.resident_id(applicant.id_number)
    return blind_index.compute(applicant.id_number.upper(), purpose="uscc")
