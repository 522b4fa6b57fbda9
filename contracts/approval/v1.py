"""What the approval service publishes (version 1)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from contracts.events import CalendarDate, Event, Payload, Timestamp, registry
from contracts.intake.v1 import FORM_CONTEXT as FORM_CONTEXT
from contracts.intake.v1 import HOLDER_CONTEXT as HOLDER_CONTEXT

# ``case.approved`` passes on what ``application.submitted`` brought, encrypted under the same
# contexts (one definition, in contracts.intake.v1): the holder's name and ID number
# (HOLDER_CONTEXT) and the form (FORM_CONTEXT).

DECISIONS_TOPIC = registry.topic(
    "wangban.approval.decisions",
    partitions=6,
    description="Decisions on applications: approvals (automatic 秒批 or by a reviewer).",
    key_description="The application id: one application's decisions arrive in order.",
)


class Completion(Payload):
    """办结 on the approval side, as ``case.completed`` would have said it."""

    completed_at: Timestamp
    working_days_used: int
    on_time: bool


@registry.event(
    type="cn.wangban.approval.case.approved.v1",
    topic=DECISIONS_TOPIC,
    key="application_id",
)
class CaseApproved(Event):
    """An application was approved.

    When the item's result is an e-certificate (``result_kind == "certificate"``), the sharing
    service issues it from ``certificate_type`` and ``certificate_fields``. The holder's name
    and ID number (or credit code) must appear on the certificate, so they travel here, but
    only encrypted with the platform's field key (``holder_name_enc``, ``holder_id_enc``,
    context ``"approval.holder"``): partner departments that read this topic see ciphertext.
    """

    application_id: str
    item_id: str
    item_version_id: str
    item_code: str
    decided_at: Timestamp
    decided_by: str
    """``auto`` for 秒批, otherwise the reviewer's user id."""
    result_kind: str
    certificate_type: str | None = None
    certificate_fields: dict[str, Any] = Field(default_factory=dict)
    """Values the certificate states that are not personal (set by the decision)."""
    certificate_facts_enc: str | None = None
    """The application's form as JSON, encrypted (context ``application.form``): the
    certificate takes the fields its type declares from it."""
    holder_kind: str = "person"
    holder_name_enc: str | None = None
    holder_id_enc: str | None = None
    establishes: str | None = None
    """设立登记: the kind of market entity this approval registers (``个体工商户``,
    ``有限责任公司`` …, the item's ``establishes``). The certificate's holder is then the new
    entity, under a credit code the sharing service assigns at issue; the ``holder_*`` fields
    name the applicant who founded it (经营者 or 法定代表人)."""
    rules: list[dict[str, str]] = Field(default_factory=list)
    """秒批: each rule's name and result (``true``/``false``/``error``/``skipped``), never
    the data it looked at."""
    completion: Completion | None = None
    """The case was completed (办结) by this decision (a 秒批 approval, complete at once): no
    ``case.completed`` follows. ``None`` when completion comes later (``case.completed``)."""


@registry.event(
    type="cn.wangban.approval.case.accepted.v1",
    topic=DECISIONS_TOPIC,
    key="application_id",
)
class CaseAccepted(Event):
    """A reviewer (or the 秒批 engine, when its rules refer the case to a person) took up the
    application."""

    application_id: str
    started_at: Timestamp
    reviewer: str


@registry.event(
    type="cn.wangban.approval.case.correction_requested.v1",
    topic=DECISIONS_TOPIC,
    key="application_id",
)
class CaseCorrectionRequested(Event):
    """补正: the applicant must correct or add something before review goes on."""

    application_id: str
    requested_at: Timestamp
    reviewer: str
    reason: str
    materials: list[str] = Field(default_factory=list)
    """Names of the materials to supply again, if any."""


@registry.event(
    type="cn.wangban.approval.case.denied.v1",
    topic=DECISIONS_TOPIC,
    key="application_id",
)
class CaseDenied(Event):
    """不予许可 / 不予通过, with the reason shown to the applicant."""

    application_id: str
    decided_at: Timestamp
    decided_by: str
    reason: str
    rules: list[dict[str, str]] = Field(default_factory=list)
    """秒批: each rule's name and result, as on ``case.approved``."""


@registry.event(
    type="cn.wangban.approval.case.not_accepted.v1",
    topic=DECISIONS_TOPIC,
    key="application_id",
)
class CaseNotAccepted(Event):
    """不予受理 by the deciding department, with the reason."""

    application_id: str
    at: Timestamp
    by: str
    reason: str


@registry.event(
    type="cn.wangban.approval.case.completed.v1",
    topic=DECISIONS_TOPIC,
    key="application_id",
)
class CaseCompleted(Event):
    """办结 on the approval side: decided, with the working days it took and whether on time.
    Not published when the decision completed the case at once (a 秒批 approval): then
    ``case.approved`` carries the same facts in ``completion``."""

    application_id: str
    outcome: str
    completed_at: Timestamp
    working_days_used: int
    on_time: bool


@registry.event(
    type="cn.wangban.approval.case.deadline_warning.v1",
    topic=DECISIONS_TOPIC,
    key="application_id",
)
class CaseDeadlineWarning(Event):
    """80 % of the committed working days are used and the case is still open."""

    application_id: str
    department: str
    due_date: CalendarDate
    provisional: bool


@registry.event(
    type="cn.wangban.approval.case.overdue.v1",
    topic=DECISIONS_TOPIC,
    key="application_id",
)
class CaseOverdue(Event):
    """The committed completion date passed with the case still open."""

    application_id: str
    department: str
    due_date: CalendarDate
