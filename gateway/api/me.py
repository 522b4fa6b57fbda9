"""The citizen's account: who I am, real-name (实名) and real-person (实人) verification, the
companies I act for, my mobile number for SMS, and my data (consents, who used it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import accounts, ratelimit, repository
from gateway.api import API, deps
from gateway.api.deps import (
    CITIZENS,
    SIGNED_IN,
    WECHAT,
    WITH_BODY,
    Citizen,
    Client,
    Services,
    blind_index_of,
    cipher_of,
    count,
    issue_tokens,
    problems,
    raw,
    verifier_of,
    wechat_of,
)
from gateway.api.passthrough import staff_operations
from gateway.schemas import (
    CompanyIn,
    CompanyOut,
    FaceFinishIn,
    FaceStartOut,
    MeOut,
    RealNameIn,
    TokenOut,
)
from gateway.upstream import FORWARDED_PROBLEMS, segment
from gateway.wechat import FaceVerificationFailed
from wangban.auth import AssuranceLevel, Identity, check_assurance
from wangban.crypto import FieldCipher, mask_name, mask_resident_id
from wangban.db import UnitOfWork

router = APIRouter(prefix=API, tags=["citizen"])

_ASSURANCE_NAMES = {1: "wechat", 2: "real_name", 3: "real_person"}


async def _me(session: AsyncSession, identity: Identity, cipher: FieldCipher) -> MeOut:
    if identity.kind == "staff":
        return MeOut(
            subject=identity.subject,
            kind="staff",
            assurance=_ASSURANCE_NAMES[int(identity.assurance)],  # type: ignore[arg-type]
            roles=sorted(identity.roles),
            department=identity.department,
            region=identity.region,
            operations=staff_operations(identity),
        )
    account = await accounts.account_of(session, identity)
    person = (
        accounts.verified_person(account, cipher) if account.id_number_enc is not None else None
    )
    return MeOut(
        subject=account.subject,
        kind="citizen",
        assurance=_ASSURANCE_NAMES[account.assurance],  # type: ignore[arg-type]
        name_masked=mask_name(person.name) if person else None,
        id_number_masked=mask_resident_id(person.id_number) if person else None,
        companies=[
            CompanyOut.model_validate(c, from_attributes=True)
            for c in await repository.companies(session, account.subject)
        ],
    )


@router.get(
    "/me",
    summary="Who I am, how far I am verified, my companies",
    responses=problems(SIGNED_IN),
)
async def me(identity: Client, session: UnitOfWork, request: Request) -> MeOut:
    return await _me(session, identity, cipher_of(request))


# --- Verification ---------------------------------------------------------------------------


@router.post(
    "/me/real-name",
    summary="实名: bind my name and resident ID number (checked against the register)",
    responses=problems(
        CITIZENS,
        WITH_BODY,
        accounts.RealNameMismatch,
        ratelimit.RateLimited,
    ),
)
async def bind_real_name(
    body: RealNameIn, identity: Citizen, session: UnitOfWork, request: Request
) -> TokenOut:
    now = deps.utcnow()
    await count(request, limit="real-name", who=identity.subject, now=now)
    account = await accounts.bind_real_name(
        session,
        subject=identity.subject,
        name=body.name,
        id_number=body.id_number,
        verifier=verifier_of(request),
        cipher=cipher_of(request),
        blind_index=blind_index_of(request),
        now=now,
    )
    # A new pair: the old access token still says "WeChat only" until it expires.
    return await issue_tokens(
        request, session, identity=accounts.citizen_identity(account), principal="citizen", now=now
    )


@router.post(
    "/me/real-person/start",
    summary="实人: start WeChat's face verification (needs real-name first)",
    responses=problems(CITIZENS, FaceVerificationFailed, WECHAT),
)
async def start_real_person(
    identity: Citizen, session: UnitOfWork, request: Request
) -> FaceStartOut:
    check_assurance(identity, AssuranceLevel.REAL_NAME)
    account = await accounts.account_of(session, identity)
    started = await accounts.start_real_person(
        session,
        account=account,
        wechat=wechat_of(request),
        cipher=cipher_of(request),
        now=deps.utcnow(),
    )
    return FaceStartOut(verify_id=started.verify_id, expires_at=started.expires_at)


@router.post(
    "/me/real-person",
    summary="实人: finish face verification (the result is asked of WeChat, not believed)",
    responses=problems(
        CITIZENS,
        WITH_BODY,
        accounts.RealPersonFailed,
        accounts.FaceVerificationNotFound,
        FaceVerificationFailed,
        WECHAT,
    ),
)
async def finish_real_person(
    body: FaceFinishIn, identity: Citizen, session: UnitOfWork, request: Request
) -> TokenOut:
    now = deps.utcnow()
    account = await accounts.finish_real_person(
        session,
        subject=identity.subject,
        verify_id=body.verify_id,
        wechat=wechat_of(request),
        cipher=cipher_of(request),
        now=now,
    )
    return await issue_tokens(
        request, session, identity=accounts.citizen_identity(account), principal="citizen", now=now
    )


# --- Companies ------------------------------------------------------------------------------


@router.get("/me/companies", summary="Companies I may act for", responses=problems(CITIZENS))
async def my_companies(identity: Citizen, session: UnitOfWork) -> list[CompanyOut]:
    return [
        CompanyOut.model_validate(c, from_attributes=True)
        for c in await repository.companies(session, identity.subject)
    ]


@router.post(
    "/me/companies",
    summary="Bind a company as its legal representative or authorised agent",
    responses=problems(CITIZENS, WITH_BODY, accounts.NotCompanyRepresentative),
)
async def bind_company(
    body: CompanyIn, identity: Citizen, session: UnitOfWork, request: Request
) -> CompanyOut:
    check_assurance(identity, AssuranceLevel.REAL_NAME)
    account = await accounts.account_of(session, identity)
    binding = await accounts.bind_company(
        session,
        account=account,
        uscc=body.uscc,
        verifier=verifier_of(request),
        cipher=cipher_of(request),
        now=deps.utcnow(),
    )
    return CompanyOut.model_validate(binding, from_attributes=True)


# --- My mobile number (notify) --------------------------------------------------------------


@router.post(
    "/me/phone",
    summary="Give my mobile number for SMS notices: a 6-digit code is sent to it",
    responses=problems(CITIZENS, WITH_BODY, ratelimit.RateLimited, FORWARDED_PROBLEMS),
)
async def give_phone(identity: Citizen, services: Services, request: Request) -> Response:
    content, headers = await raw(request)
    return await services.forward("notify", "POST", "/me/phone", content=content, headers=headers)


@router.post(
    "/me/phone/verify",
    summary="Type back the SMS code: SMS notices then go to that number",
    responses=problems(CITIZENS, WITH_BODY, FORWARDED_PROBLEMS),
)
async def verify_phone(identity: Citizen, services: Services, request: Request) -> Response:
    content, headers = await raw(request)
    return await services.forward(
        "notify", "POST", "/me/phone/verify", content=content, headers=headers
    )


# --- My data: consents and who used it (sharing) --------------------------------------------


@router.get(
    "/consents",
    summary="My consents to lookups of my data (数据授权)",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_consents(identity: Citizen, services: Services) -> Response:
    return await services.forward("sharing", "GET", "/me/consents")


@router.post(
    "/consents",
    status_code=201,
    summary="Consent to lookups of my data for an item, before applying (数据授权)",
    description="Some items' data (敏感个人信息, e.g. disability records) may be looked up only "
    "with the citizen's consent; without it 秒批 cannot read them and the case goes to a person.",
    responses=problems(CITIZENS, WITH_BODY, FORWARDED_PROBLEMS),
)
async def give_consent(identity: Citizen, services: Services, request: Request) -> Response:
    content, headers = await raw(request)
    return await services.forward(
        "sharing", "POST", "/me/consents", content=content, headers=headers
    )


@router.delete(
    "/consents/{consent_id}",
    summary="Withdraw a consent",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def withdraw_consent(consent_id: str, identity: Citizen, services: Services) -> Response:
    return await services.forward("sharing", "DELETE", f"/me/consents/{segment(consent_id)}")


@router.get(
    "/data-usage",
    summary="Who used my data, when and why",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_data_usage(
    identity: Citizen,
    services: Services,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    return await services.forward(
        "sharing", "GET", "/me/data-usage", params={"limit": limit, "before": before}
    )
