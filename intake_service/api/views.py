"""An application as its applicant and the staff allowed to read it see it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import bundles, repository
from intake_service.applications.creation import Keys
from intake_service.applications.forms import clear_form
from intake_service.models import Application, ApplicationMaterial, TimelineEntry
from intake_service.schemas import (
    ApplicationOut,
    ApplicationSummary,
    BundleStatusOut,
    MaterialOut,
    TimelineOut,
)
from wangban import labels


async def application_out(
    session: AsyncSession,
    application: Application,
    keys: Keys,
    *,
    timeline: Sequence[TimelineEntry] | None = None,
    materials: Sequence[ApplicationMaterial] | None = None,
) -> ApplicationOut:
    """The whole application: the form's personal fields, encrypted at rest, in clear.
    ``timeline`` and ``materials``: as the request just wrote them (not read back)."""
    if timeline is None:
        timeline = await repository.timeline(session, application.id)
    if materials is None:
        materials = await repository.materials(session, application.id)
    members = (
        await repository.children(session, application.id) if application.kind == "bundle" else []
    )
    state = bundles.aggregate(members) if members else None
    return ApplicationOut(
        **summary(application).model_dump(),
        parent_id=application.parent_id,
        item_version_id=application.item_version_id,
        bundle_version_id=application.bundle_version_id,
        region_code=application.region_code,
        accepting_window=application.accepting_window,
        accepting_region=application.accepting_region,
        accepted_by=application.accepted_by,
        agent=application.agent_subject,
        form=clear_form(application, keys.cipher),
        form_sources=application.form_sources or {},
        timeline=[TimelineOut.model_validate(t) for t in timeline],
        materials=[MaterialOut.model_validate(m) for m in materials],
        bundle=(
            BundleStatusOut(
                total=state.total,
                done=state.done,
                summary=state.summary,
                needs_correction=state.needs_correction,
            )
            if state
            else None
        ),
        members=[summary(m) for m in members],
    )


def summary(application: Application) -> ApplicationSummary:
    return ApplicationSummary(
        id=application.id,
        kind=application.kind,
        item_code=application.item_code,
        item_name=application.item_name,
        department=application.department,
        status=application.status,
        status_name=labels.status_label(application.status),
        status_reason=application.status_reason,
        channel=application.channel,
        created_at=application.created_at,
        submitted_at=application.submitted_at,
        due_date=application.due_date,
        tolerated_until=application.tolerated_until,
    )
