"""An application as its applicant and the staff allowed to read it see it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from intake_service import bundles, ratings, repository
from intake_service.applications.creation import Keys
from intake_service.applications.forms import clear_form
from intake_service.applications.lifecycle import may_withdraw
from intake_service.applications.supplements import may_supplement
from intake_service.events import HOLDER_CONTEXT
from intake_service.models import Application, ApplicationMaterial, TimelineEntry
from intake_service.schemas import (
    ApplicantActions,
    ApplicantOnScreen,
    ApplicationOut,
    ApplicationSummary,
    BundleStatusOut,
    MaterialOut,
    StaffApplicationSummary,
    TimelineOut,
)
from wangban import labels
from wangban.crypto import FieldCipher, mask_name, mask_resident_id


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
    # Only a finished application can have been rated: the rating is read only then, so filing
    # and following an application cost no statement more.
    rateable = application.status in ratings.RATEABLE_STATUSES
    rated = rateable and await ratings.rating_of(session, application_id=application.id) is not None
    return ApplicationOut(
        **summary(application).model_dump(),
        applicant=applicant_on_screen(application, keys.cipher),
        actions=ApplicantActions(
            withdraw=may_withdraw(application),
            supplement=may_supplement(application, materials),
            rate=rateable and not rated,
        ),
        rated=rated,
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


def applicant_on_screen(application: Application, cipher: FieldCipher) -> ApplicantOnScreen:
    name = cipher.decrypt(application.applicant_name_enc, context=HOLDER_CONTEXT)
    id_number = cipher.decrypt(application.applicant_id_enc, context=HOLDER_CONTEXT)
    return ApplicantOnScreen(
        kind=application.applicant_kind,
        name=mask_name(name),
        # A company's unified social credit code is public (营业执照); a person's number is not.
        id_number=mask_resident_id(id_number)
        if application.applicant_kind == "person"
        else id_number,
    )


def staff_summary(application: Application, cipher: FieldCipher) -> StaffApplicationSummary:
    """A row of a staff list: the summary and who applied, masked."""
    return StaffApplicationSummary(
        **summary(application).model_dump(),
        applicant=applicant_on_screen(application, cipher),
    )
