"""The applicant's routes: applying (online), prefill, submitting a draft, their applications,
withdrawing, supplying materials."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from intake_service import applying, repository
from intake_service.api.deps import APPLY_ERRORS, Shared, own, readable
from intake_service.api.views import application_out, summary
from intake_service.applications import errors, supplements
from intake_service.applications.creation import Channel
from intake_service.applications.lifecycle import withdraw as withdraw_application
from intake_service.catalog_copies import CatalogUnavailable
from intake_service.schemas import (
    ApplicationIn,
    ApplicationOut,
    ApplicationSummary,
    OptionalReasonIn,
    PrefillIn,
    PrefillOut,
    SubmitIn,
    SupplementIn,
)
from wangban.auth import CurrentIdentity
from wangban.db import UnitOfWork
from wangban.errors import Forbidden, problem_responses

router = APIRouter(tags=["applications"])


@router.post(
    "/applications",
    status_code=201,
    summary="Apply for an item or a bundle (一件事); Idempotency-Key required unless a draft",
    responses=problem_responses(*APPLY_ERRORS),
)
async def apply(
    body: ApplicationIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> ApplicationOut:
    if identity.kind not in ("citizen", "company"):
        raise Forbidden("工作人员请通过窗口受理接口代为申请")
    applied = await applying.apply(
        session,
        services=runtime,
        body=body,
        applicant=applying.citizen_applicant(identity, body, runtime.keys),
        channel=Channel(name=body.channel),
        key=idempotency_key,
        actor_kind="applicant",
        actor=identity.subject,
        identity=identity,
    )
    if not applied.created:
        response.status_code = 200  # the same request again: the same application
    return await application_out(
        session,
        applied.application,
        runtime.keys,
        timeline=applied.timeline,
        materials=applied.materials,
    )


@router.post(
    "/prefill",
    summary="Form fields the government already knows, with their source (read-only)",
    description="POST, not GET: the body carries the applicant's ID number, which must "
    "never appear in a URL (URLs end up in access logs).",
    responses=problem_responses(
        errors.ItemVersionNotAvailable, errors.ApplicantMismatch, CatalogUnavailable
    ),
)
async def get_prefill(
    body: PrefillIn,
    identity: CurrentIdentity,
    runtime: Shared,
) -> dict[str, PrefillOut]:
    # No session of the request: the catalog (a copy that lags) and sharing are asked, and
    # nothing is written.
    values = await applying.prefill_for(
        runtime, identity=identity, item_version_id=body.item_version_id, id_number=body.id_number
    )
    return {
        name: PrefillOut(
            value=v.value, provider=v.provider, updated_at=v.updated_at, dataset=v.dataset
        )
        for name, v in values.items()
    }


@router.post(
    "/applications/{application_id}/submit",
    summary="Submit a draft",
    responses=problem_responses(errors.ApplicationNotFound, errors.AlreadySubmitted, *APPLY_ERRORS),
)
async def submit_draft(
    application_id: str,
    body: SubmitIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
) -> ApplicationOut:
    application = await readable(session, identity, application_id)
    own(identity, application)
    await applying.submit_draft(
        session,
        services=runtime,
        application=application,
        choices=applying.material_choices(body.materials),
        actor=identity.subject,
    )
    return await application_out(session, application, runtime.keys)


@router.get("/applications", summary="My applications, newest first")
async def my_applications(
    session: UnitOfWork, identity: CurrentIdentity
) -> list[ApplicationSummary]:
    rows = await repository.applications_of(session, applicant_subject=identity.subject, limit=100)
    return [summary(r) for r in rows]


@router.get(
    "/applications/{application_id}",
    summary="One application with its timeline and materials",
    responses=problem_responses(errors.ApplicationNotFound),
)
async def get_application(
    application_id: str, session: UnitOfWork, identity: CurrentIdentity, runtime: Shared
) -> ApplicationOut:
    application = await readable(session, identity, application_id)
    return await application_out(session, application, runtime.keys)


@router.post(
    "/applications/{application_id}/withdraw",
    summary="Withdraw before a decision",
    responses=problem_responses(errors.ApplicationNotFound, errors.TransitionNotAllowed),
)
async def withdraw(
    application_id: str,
    body: OptionalReasonIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
) -> ApplicationOut:
    application = await readable(session, identity, application_id)
    own(identity, application)
    await withdraw_application(
        session, application=application, actor=identity.subject, reason=body.reason
    )
    return await application_out(session, application, runtime.keys)


@router.post(
    "/applications/{application_id}/supplement",
    summary="Supply missing (容缺) or requested (补正) materials",
    responses=problem_responses(
        errors.ApplicationNotFound, errors.TransitionNotAllowed, errors.MaterialsIncomplete
    ),
)
async def supplement(
    application_id: str,
    body: SupplementIn,
    session: UnitOfWork,
    identity: CurrentIdentity,
    runtime: Shared,
) -> ApplicationOut:
    application = await readable(session, identity, application_id)
    own(identity, application)
    await supplements.supplement(
        session,
        application=application,
        choices=applying.material_choices(body.materials),
        actor_kind="applicant",
        actor=identity.subject,
    )
    return await application_out(session, application, runtime.keys)
