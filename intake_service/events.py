"""What the intake service publishes (through its outbox).

``application.*`` events go to partner departments too, so they carry what approval needs and
no more: ids, the item, the form, how each material was met (evidence ids, never files) and the
applicant's ID number and name only encrypted with the platform field key (approval needs them
for its data lookups and for the certificate), never in clear.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from intake_service.models import kit_tables
from wangban.events import Event, registry
from wangban.outbox import Outbox

outbox = Outbox(schema="intake", source="/wangban/intake", tables=kit_tables)

APPLICATIONS_TOPIC = registry.topic(
    "wangban.intake.applications",
    partitions=6,
    description="Applications (办件): submitted, accepted, supplemented, withdrawn, completed.",
    key_description="The application id: one application's events arrive in order.",
)

HOLDER_CONTEXT = "approval.holder"
"""Encryption context of the applicant's ID number and name in events (the same one the
approval service uses when it passes them on to the certificate library)."""


class MaterialOutcome(BaseModel):
    """How one material of the application was met."""

    name: str
    source: str
    status: str
    evidence_kind: str | None = None
    evidence_id: str | None = None


@registry.event(
    type="cn.wangban.intake.application.submitted.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationSubmitted(Event):
    """An applicant submitted an application (or a bundle member was created by one)."""

    application_id: str
    parent_id: str | None = None
    item_version_id: str
    item_code: str
    department: str
    region_code: str
    channel: str
    applicant_kind: str
    applicant_id_enc: str
    applicant_name_enc: str
    applicant_age: int | None = None
    applicant_region_code: str | None = None
    form: dict[str, Any]
    materials: list[MaterialOutcome] = Field(default_factory=list)
    submitted_at: str


@registry.event(
    type="cn.wangban.intake.application.accepted.v1", topic=APPLICATIONS_TOPIC, key="application_id"
)
class ApplicationAccepted(Event):
    """受理: the application is complete enough to be decided (possibly with materials
    tolerated as missing, 容缺, until ``tolerated_until``). Approval starts here."""

    application_id: str
    item_version_id: str
    item_code: str
    accepted_at: str
    accepted_by: str
    accepting_window: str | None = None
    accepting_region: str | None = None
    due_date: str | None = None
    tolerated_until: str | None = None
    tolerated_materials: list[str] = Field(default_factory=list)


@registry.event(
    type="cn.wangban.intake.application.not_accepted.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationNotAccepted(Event):
    """不予受理, with the reason."""

    application_id: str
    item_code: str
    at: str
    reason: str


@registry.event(
    type="cn.wangban.intake.application.supplemented.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationSupplemented(Event):
    """补齐 / 补正: the applicant supplied what was missing or asked for."""

    application_id: str
    at: str
    materials: list[str]
    complete: bool
    """No material is missing any more (a held result may now be released)."""


@registry.event(
    type="cn.wangban.intake.application.withdrawn.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationWithdrawn(Event):
    """The applicant withdrew the application before a decision."""

    application_id: str
    at: str
    reason: str


@registry.event(
    type="cn.wangban.intake.application.terminated.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationTerminated(Event):
    """Ended without a decision, e.g. materials accepted as missing (容缺) not supplied in time."""

    application_id: str
    at: str
    reason: str


@registry.event(
    type="cn.wangban.intake.application.completed.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class ApplicationCompleted(Event):
    """办结: decided and nothing outstanding; ``outcome`` is ``approved`` or ``denied``."""

    application_id: str
    item_code: str
    department: str
    outcome: str
    completed_at: str
    on_time: bool | None = None


@registry.event(
    type="cn.wangban.intake.application.reminder_due.v1",
    topic=APPLICATIONS_TOPIC,
    key="application_id",
)
class SupplementReminderDue(Event):
    """容缺: the deadline for the missing materials is near; notify reminds the applicant."""

    application_id: str
    tolerated_until: str
    materials: list[str]
