"""The states of an application and who may move it from which to which: every change is a
timeline entry with its actor, and anything the table does not allow is refused."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service.applications.errors import TransitionNotAllowed
from intake_service.models import Application, TimelineEntry
from wangban import labels

ActorKind = Literal["applicant", "staff", "system", "service"]

STATUS_NAMES: Mapping[str, str] = labels.STATUS_LABELS
"""The applicant's words for each state: the platform's one table (:mod:`wangban.labels`)."""

TRANSITIONS: Mapping[str, Mapping[str, frozenset[ActorKind]]] = {
    "draft": {
        "submitted": frozenset({"applicant", "staff"}),
        "withdrawn": frozenset({"applicant"}),
    },
    "submitted": {
        "accepted": frozenset({"staff", "system"}),
        "not_accepted": frozenset({"staff"}),
        "withdrawn": frozenset({"applicant"}),
    },
    "accepted": {
        "under_review": frozenset({"service"}),
        "not_accepted": frozenset({"service"}),
        "approved": frozenset({"service"}),
        "denied": frozenset({"service"}),
        "withdrawn": frozenset({"applicant"}),
        "terminated": frozenset({"system"}),
    },
    "under_review": {
        "correction_requested": frozenset({"service"}),
        "approved": frozenset({"service"}),
        "denied": frozenset({"service"}),
        "withdrawn": frozenset({"applicant"}),
        "terminated": frozenset({"system"}),
    },
    "correction_requested": {
        "resubmitted": frozenset({"applicant", "staff"}),
        "withdrawn": frozenset({"applicant"}),
        "terminated": frozenset({"system"}),
    },
    "resubmitted": {
        "under_review": frozenset({"service"}),
        "correction_requested": frozenset({"service"}),
        "approved": frozenset({"service"}),
        "denied": frozenset({"service"}),
        "withdrawn": frozenset({"applicant"}),
        "terminated": frozenset({"system"}),
    },
    "approved": {
        "completed": frozenset({"system"}),
        "certificate_failed": frozenset({"service"}),
        "terminated": frozenset({"system"}),
    },
    # Approved, but the certificate it earned could not be issued: staff see it and act; it
    # completes when the certificate is issued after all.
    "certificate_failed": {"completed": frozenset({"system"}), "terminated": frozenset({"system"})},
    "denied": {"completed": frozenset({"system"})},
    "completed": {"delivered": frozenset({"system", "service"})},
}
"""Who may move an application from one state to the next. Anything else is refused."""

DECIDED = frozenset({"approved", "certificate_failed", "denied", "completed", "delivered"})
FINAL = frozenset({"not_accepted", "withdrawn", "terminated", "delivered"})


def transition(
    application: Application,
    *,
    to: str,
    actor_kind: ActorKind,
    actor: str,
    at: datetime,
    note: str = "",
) -> TimelineEntry:
    """Move the application to ``to`` if its state machine allows ``actor_kind`` to; returns
    the timeline entry (the caller adds it to the session)."""
    current = application.status
    allowed = TRANSITIONS.get(current, {}).get(to)
    if allowed is None or actor_kind not in allowed:
        raise TransitionNotAllowed(
            f"申请当前为「{labels.status_label(current)}」，不能变更为「{labels.status_label(to)}」"
        )
    application.status = to
    if (
        to
        in (
            "not_accepted",
            "withdrawn",
            "terminated",
            "denied",
            "correction_requested",
            "certificate_failed",
        )
        and note
    ):
        application.status_reason = note
    if to == "submitted":
        application.submitted_at = at
    elif to == "accepted":
        application.accepted_at = at
    elif to in ("approved", "denied"):
        application.decided_at = at
    elif to == "completed":
        application.completed_at = at
    return TimelineEntry(
        application_id=application.id,
        at=at,
        from_status=current,
        to_status=to,
        actor_kind=actor_kind,
        actor=actor,
        note=note,
    )


async def move(
    session: AsyncSession,
    application: Application,
    *,
    to: str,
    actor_kind: ActorKind,
    actor: str,
    at: datetime,
    note: str = "",
) -> None:
    session.add(
        transition(application, to=to, actor_kind=actor_kind, actor=actor, at=at, note=note)
    )
    await session.flush()
