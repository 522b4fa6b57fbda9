"""The citizen's applications: applying (:mod:`gateway.applying`), my applications, material
files, and what a citizen does to one (submit a draft, supplement, withdraw, rate)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from gateway import accounts, applying, ratelimit
from gateway.api import API, deps
from gateway.api.deps import (
    CITIZENS,
    UPLOADS,
    WITH_BODY,
    Citizen,
    Services,
    cipher_of,
    client_ip,
    database_of,
    limits,
    problems,
    raw,
    settings_of,
)
from gateway.schemas import ApplyIn
from gateway.upstream import FORWARDED_PROBLEMS, segment
from wangban.http import IDEMPOTENCY_KEY_HEADER

router = APIRouter(prefix=API, tags=["citizen"])


@router.post(
    "/applications",
    summary="Apply for an item or a bundle (Idempotency-Key required)",
    status_code=201,
    responses=problems(
        CITIZENS, WITH_BODY, FORWARDED_PROBLEMS, ratelimit.RateLimited, accounts.CompanyNotBound
    ),
)
async def apply(
    body: ApplyIn,
    identity: Citizen,
    services: Services,
    request: Request,
    idempotency_key: Annotated[str, Header(alias=IDEMPOTENCY_KEY_HEADER, max_length=100)],
) -> Response:
    submissions = limits(settings_of(request))
    return await applying.apply(
        body=body,
        identity=identity,
        services=services,
        database=database_of(request),
        cipher=cipher_of(request),
        idempotency_key=idempotency_key,
        counted=[
            (submissions["submit-user"], identity.subject),
            (submissions["submit-ip"], client_ip(request)),
        ],
        now=deps.utcnow(),
    )


@router.get(
    "/applications",
    summary="My applications",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_applications(identity: Citizen, services: Services) -> Response:
    return await services.forward("intake", "GET", "/applications")


@router.get(
    "/applications/{application_id}",
    summary="One application with its timeline and the reasons of any decision",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_application(application_id: str, identity: Citizen, services: Services) -> Response:
    return await services.forward("intake", "GET", f"/applications/{segment(application_id)}")


@router.post(
    "/applications/{application_id}/materials",
    summary="Upload a material file (multipart) for use in this application",
    status_code=201,
    responses=problems(CITIZENS, FORWARDED_PROBLEMS, UPLOADS),
)
async def upload_material(
    application_id: str, identity: Citizen, services: Services, request: Request
) -> Response:
    content, headers = await raw(request)
    return await services.forward(
        "intake",
        "POST",
        "/files",
        content=content,
        headers=headers,
        params={"application_id": application_id},
    )


def _pass_through_action(action: str, summary: str) -> None:
    async def act(
        application_id: str, identity: Citizen, services: Services, request: Request
    ) -> Response:
        content, headers = await raw(request)
        return await services.forward(
            "intake",
            "POST",
            f"/applications/{segment(application_id)}/{action}",
            content=content,
            headers=headers,
        )

    act.__name__ = f"application_{action}"
    router.post(
        f"/applications/{{application_id}}/{action}",
        summary=summary,
        responses=problems(CITIZENS, FORWARDED_PROBLEMS),
    )(act)


for _action, _summary in (
    ("submit", "Submit a draft"),
    ("supplement", "Supply what was missing (容缺) or asked for (补正)"),
    ("withdraw", "Withdraw my application"),
    ("rating", "Rate the service (好差评)"),
):
    _pass_through_action(_action, _summary)
