"""Routes of the gateway, under ``/api/v1``: parse, authenticate, authorise, call, return.

Authentication happens here and nowhere else: a client's access token becomes the
:class:`~wangban.auth.Identity` the services receive (as the internal token). Most routes pass
through to the service that owns the data and return its answer unchanged; a few aggregate
(``/home``) or translate (``POST /applications`` names the item by code and the applicant by
the logged-in account). Each service authorises the person again.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import accounts, clients, ratelimit, recipients, repository, sessions
from gateway.identity_provider import IdentityVerifier
from gateway.models import Account
from gateway.protection import BodyTooLarge
from gateway.schemas import (
    PRINTABLE,
    ApplyIn,
    CompanyIn,
    CompanyOut,
    DevLoginIn,
    FaceFinishIn,
    FaceStartOut,
    HomeOut,
    MeOut,
    RealNameIn,
    RefreshIn,
    StaffLoginIn,
    TokenOut,
    WeChatLoginIn,
)
from gateway.upstream import (
    FORWARDED_PROBLEMS,
    UpstreamProblem,
    Upstreams,
    UpstreamUnavailable,
    gateway_path_var,
    segment,
)
from gateway.wechat import (
    FaceVerificationFailed,
    HighRiskUser,
    InvalidLoginCode,
    LoginRateLimited,
    WeChatAuth,
    WeChatBusy,
    WeChatSession,
    WeChatUnavailable,
)
from wangban.auth import (
    AssuranceLevel,
    Identity,
    InsufficientAssurance,
    InternalTokens,
    check_assurance,
    identity_var,
)
from wangban.crypto import FieldCipher, mask_name, mask_resident_id
from wangban.db import Database, UnitOfWork
from wangban.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    Problem,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from wangban.http import IDEMPOTENCY_KEY_HEADER
from wangban.settings import Environment, Settings

API = "/api/v1"

auth_router = APIRouter(prefix=f"{API}/auth", tags=["login"])
public_router = APIRouter(prefix=API, tags=["public"])
citizen_router = APIRouter(prefix=API, tags=["citizen"])
staff_router = APIRouter(prefix=f"{API}/staff", tags=["staff"])
stats_router = APIRouter(prefix=f"{API}/stats", tags=["statistics"])

_BEARER = re.compile(r"Bearer\s+(\S+)", re.IGNORECASE)
_ASSURANCE_NAMES = {1: "wechat", 2: "real_name", 3: "real_person"}


class DevLoginDisabled(NotFound):
    type_slug = "not-found"
    title = "资源不存在"


class AccountGone(Unauthorized):
    type_slug = "account-gone"
    title = "账号不可用"


class CitizensOnly(Forbidden):
    type_slug = "citizens-only"
    title = "仅限个人用户"


class StaffOnly(Forbidden):
    type_slug = "staff-only"
    title = "仅限工作人员"


class UnsupportedMediaType(Problem):
    """A service refused the body's content type (an upload or import that is not multipart,
    CSV or JSON), passed on unchanged."""

    status = 415
    type_slug = "http-415"
    title = "不支持的内容类型"


# --- What each kind of route may answer (its OpenAPI ``responses``) --------------------------

SIGNED_IN: tuple[type[Problem], ...] = (Unauthorized, sessions.SessionExpired, AccountGone)
"""No, a malformed, an expired or a forged access token; one whose login has ended (logout,
refresh token reuse); an account that is gone."""
CITIZENS: tuple[type[Problem], ...] = (*SIGNED_IN, CitizensOnly, InsufficientAssurance)
STAFF: tuple[type[Problem], ...] = (Unauthorized, sessions.SessionExpired, StaffOnly)
WITH_BODY: tuple[type[Problem], ...] = (BadRequest,)
"""A body that is not JSON at all (not even decodable) is a 400 before any validation."""
UPLOADS: tuple[type[Problem], ...] = (BodyTooLarge, UnsupportedMediaType)
WECHAT: tuple[type[Problem], ...] = (WeChatBusy, WeChatUnavailable)


def problems(*groups: tuple[type[Problem], ...] | type[Problem]) -> dict[int | str, Any]:
    """``problem_responses`` for several groups of problems, each problem listed once."""
    classes: list[type[Problem]] = []
    for group in groups:
        for cls in group if isinstance(group, tuple) else (group,):
            if cls not in classes:
                classes.append(cls)
    return problem_responses(*classes)


# --- Dependencies ---------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _tokens(request: Request) -> InternalTokens:
    tokens: InternalTokens = request.app.state.client_tokens
    return tokens


async def _upstreams(request: Request) -> Upstreams:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hop on every pass-through request (under load, waiting for worker threads to start
    # dominated the gateway's profile).
    upstreams: Upstreams = request.app.state.upstreams
    # A problem passed through names the path the client asked for, not the service's.
    gateway_path_var.set(request.url.path)
    return upstreams


def _wechat(request: Request) -> WeChatAuth:
    return clients.wechat_auth(request.app)


def _verifier(request: Request) -> IdentityVerifier:
    verifier: IdentityVerifier = request.app.state.identity_verifier
    return verifier


def _cipher(request: Request) -> FieldCipher:
    cipher: FieldCipher = request.app.state.cipher
    return cipher


async def client_identity(request: Request) -> Identity:
    """The caller, from the access token the gateway issued (401 without a valid one). Bound
    for the request, so every call to a service carries it."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("请先登录")
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        raise Unauthorized("登录凭证格式不正确")
    identity, family = _tokens(request).verify_session(match.group(1))
    # A token outlives its login only until the gateway hears of the logout (or of a refresh
    # token's reuse): its family is checked against the ended ones (cached a few seconds).
    if family is None or await sessions.revocations(request.app).is_revoked(family):
        raise sessions.SessionExpired("登录已失效，请重新登录")
    identity_var.set(identity)
    request.state.subject = identity.subject
    return identity


Client = Annotated[Identity, Depends(client_identity)]
Services = Annotated[Upstreams, Depends(_upstreams)]


async def citizen_identity(identity: Client) -> Identity:
    if identity.kind not in ("citizen", "company"):
        raise CitizensOnly("此功能仅限个人用户使用")
    return identity


async def staff_member(identity: Client) -> Identity:
    if identity.kind != "staff":
        raise StaffOnly("此功能仅限工作人员使用")
    return identity


Citizen = Annotated[Identity, Depends(citizen_identity)]
Staff = Annotated[Identity, Depends(staff_member)]


def _client_ip(request: Request) -> str:
    """The client's address for per-address limits: the socket's peer, or behind our own proxies
    the right-most address in ``X-Forwarded-For`` they did not write (``ratelimit``)."""
    trusted: ratelimit.TrustedProxies = request.app.state.trusted_proxies
    return trusted.client_address(
        request.client.host if request.client else None,
        request.headers.getlist("x-forwarded-for"),
    )


async def _limit(request: Request, *, limit: ratelimit.Limit, who: str, now: datetime) -> None:
    """Count the request in its own transaction: a request that then fails (a wrong login
    code) must still count, or failures would be free."""
    database: Database = request.app.state.database
    async with database.sessionmaker() as counting, counting.begin():
        decision = await ratelimit.hit(counting, limit=limit, who=who, now=now)
    ratelimit.check(decision)


async def _account(session: AsyncSession, identity: Identity, *, lock: bool = False) -> Account:
    account = await repository.account(session, identity.subject, lock=lock)
    if account is None:
        raise AccountGone("账号不存在，请重新登录")
    return account


def _limits(settings: Settings) -> dict[str, ratelimit.Limit]:
    return {
        "login": ratelimit.Limit("login", "ip", settings.gateway_login_per_minute_per_ip, 60),
        "staff-login": ratelimit.Limit(
            "staff-login", "ip", settings.gateway_staff_login_per_minute_per_ip, 60
        ),
        "real-name": ratelimit.Limit(
            "real-name", "user", settings.gateway_real_name_per_hour_per_user, 3600
        ),
        "submit-user": ratelimit.Limit(
            "submit", "user", settings.gateway_submissions_per_minute_per_user, 60
        ),
        "submit-ip": ratelimit.Limit(
            "submit", "ip", settings.gateway_submissions_per_minute_per_ip, 60
        ),
    }


async def _login(
    request: Request,
    session: AsyncSession,
    *,
    identity: Identity,
    principal: str,
    now: datetime,
    family_id: str | None = None,
) -> TokenOut:
    """A new token pair for ``identity`` (in the refresh family ``family_id`` when rotating)."""
    pair = await sessions.open_session(
        session,
        identity=identity,
        principal=principal,
        tokens=_tokens(request),
        settings=_settings(request),
        now=now,
        family_id=family_id,
    )
    return _token_out(pair)


def _report_openid(request: Request, tasks: BackgroundTasks, account: Account) -> None:
    """Tell notify the openid this account logged in with, once the login has committed and
    its answer has been sent: the call holds no transaction, the citizen does not wait for it,
    and a failure (logged, counted) is repaired by the next login."""
    upstreams: Upstreams = request.app.state.upstreams
    tasks.add_task(
        recipients.report_wechat_binding,
        notify=upstreams.clients["notify"],
        tokens=request.app.state.service_tokens,
        subject=account.subject,
        openid=account.openid,
        reports=request.app.state.binding_reports,
    )


def _token_out(pair: sessions.TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        token_type=pair.token_type,
    )


# --- Login ----------------------------------------------------------------------------------


@auth_router.post(
    "/wechat",
    summary="Log in with the code from wx.login",
    responses=problems(
        WITH_BODY, InvalidLoginCode, HighRiskUser, ratelimit.RateLimited, LoginRateLimited, WECHAT
    ),
)
async def login_with_wechat(
    body: WeChatLoginIn, request: Request, session: UnitOfWork, tasks: BackgroundTasks
) -> TokenOut:
    settings, now = _settings(request), utcnow()
    await _limit(request, limit=_limits(settings)["login"], who=_client_ip(request), now=now)
    wechat = await _wechat(request).code_to_session(body.code)
    account = await accounts.wechat_login(session, wechat=wechat, now=now)
    token = await _login(
        request, session, identity=accounts.citizen_identity(account), principal="citizen", now=now
    )
    _report_openid(request, tasks, account)
    return token


@auth_router.post(
    "/refresh",
    summary="A new token pair for a refresh token (each works once)",
    responses=problems(
        WITH_BODY, sessions.SessionExpired, sessions.RefreshTokenReused, AccountGone
    ),
)
async def refresh(body: RefreshIn, request: Request, session: UnitOfWork) -> TokenOut:
    now = utcnow()
    used = await sessions.use_refresh_token(
        session,
        refresh_token=body.refresh_token,
        revocations=sessions.revocations(request.app),
        now=now,
    )
    if used.principal == "staff":
        staff = await repository.staff_by_subject(session, used.subject)
        if staff is None or staff.disabled:
            raise AccountGone("账号不可用")
        identity = accounts.staff_identity(staff)
    else:
        account = await repository.account(session, used.subject)
        if account is None:
            raise AccountGone("账号不存在，请重新登录")
        identity = accounts.citizen_identity(account)
    return await _login(
        request,
        session,
        identity=identity,
        principal=used.principal,
        now=now,
        family_id=used.family_id,
    )


@auth_router.post(
    "/logout",
    summary="End this login everywhere its tokens went",
    status_code=204,
    responses=problems(WITH_BODY),
)
async def logout(body: RefreshIn, request: Request, session: UnitOfWork) -> None:
    await sessions.close_session(
        session,
        refresh_token=body.refresh_token,
        revocations=sessions.revocations(request.app),
        now=utcnow(),
    )


@auth_router.post(
    "/staff",
    summary="Staff login with username and password",
    responses=problems(
        WITH_BODY, accounts.WrongCredentials, accounts.LoginThrottled, ratelimit.RateLimited
    ),
)
async def login_staff(body: StaffLoginIn, request: Request, session: UnitOfWork) -> TokenOut:
    settings, now = _settings(request), utcnow()
    await _limit(request, limit=_limits(settings)["staff-login"], who=_client_ip(request), now=now)
    staff = await accounts.staff_login(
        session,
        username=body.username,
        password=body.password,
        address=_client_ip(request),
        blind_index=request.app.state.blind_index,
        now=now,
    )
    return await _login(
        request, session, identity=accounts.staff_identity(staff), principal="staff", now=now
    )


@auth_router.post(
    "/dev",
    summary="Development login (WANGBAN_ENV local or test only): an account for any openid",
    responses=problems(
        WITH_BODY,
        DevLoginDisabled,
        accounts.RealNameMismatch,
        ValidationFailed,
    ),
)
async def login_for_development(
    body: DevLoginIn, request: Request, session: UnitOfWork, tasks: BackgroundTasks
) -> TokenOut:
    settings, now = _settings(request), utcnow()
    if settings.env not in (Environment.LOCAL, Environment.TEST):
        raise DevLoginDisabled("资源不存在")
    account = await accounts.wechat_login(
        session, wechat=WeChatSession(openid=body.openid, unionid=None), now=now
    )
    if body.assurance != "wechat":
        if not (body.name and body.id_number):
            raise accounts.RealNameMismatch("开发登录需要姓名和身份证号码")
        await accounts.bind_real_name(
            session,
            account=account,
            name=body.name,
            id_number=body.id_number,
            verifier=_verifier(request),
            cipher=_cipher(request),
            blind_index=request.app.state.blind_index,
            now=now,
        )
        if body.assurance == "real_person":
            account.assurance = int(AssuranceLevel.REAL_PERSON)
            account.real_person_at = now
            await session.flush()
    token = await _login(
        request, session, identity=accounts.citizen_identity(account), principal="citizen", now=now
    )
    _report_openid(request, tasks, account)
    return token


# --- Me -------------------------------------------------------------------------------------


async def _me(session: AsyncSession, identity: Identity, cipher: FieldCipher) -> MeOut:
    if identity.kind == "staff":
        return MeOut(
            subject=identity.subject,
            kind="staff",
            assurance=_ASSURANCE_NAMES[int(identity.assurance)],  # type: ignore[arg-type]
            roles=sorted(identity.roles),
            department=identity.department,
        )
    account = await _account(session, identity)
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


@citizen_router.get(
    "/me",
    summary="Who I am, how far I am verified, my companies",
    responses=problems(SIGNED_IN),
)
async def me(identity: Client, session: UnitOfWork, request: Request) -> MeOut:
    return await _me(session, identity, _cipher(request))


@citizen_router.post(
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
    settings, now = _settings(request), utcnow()
    await _limit(request, limit=_limits(settings)["real-name"], who=identity.subject, now=now)
    account = await _account(session, identity, lock=True)
    await accounts.bind_real_name(
        session,
        account=account,
        name=body.name,
        id_number=body.id_number,
        verifier=_verifier(request),
        cipher=_cipher(request),
        blind_index=request.app.state.blind_index,
        now=now,
    )
    # A new pair: the old access token still says "WeChat only" until it expires.
    return await _login(
        request, session, identity=accounts.citizen_identity(account), principal="citizen", now=now
    )


@citizen_router.post(
    "/me/real-person/start",
    summary="实人: start WeChat's face verification (needs real-name first)",
    responses=problems(CITIZENS, FaceVerificationFailed, WECHAT),
)
async def start_real_person(
    identity: Citizen, session: UnitOfWork, request: Request
) -> FaceStartOut:
    check_assurance(identity, AssuranceLevel.REAL_NAME)
    account = await _account(session, identity)
    started = await accounts.start_real_person(
        session, account=account, wechat=_wechat(request), cipher=_cipher(request), now=utcnow()
    )
    return FaceStartOut(verify_id=started.verify_id, expires_at=started.expires_at)


@citizen_router.post(
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
    now = utcnow()
    account = await _account(session, identity, lock=True)
    await accounts.finish_real_person(
        session,
        account=account,
        verify_id=body.verify_id,
        wechat=_wechat(request),
        cipher=_cipher(request),
        now=now,
    )
    return await _login(
        request, session, identity=accounts.citizen_identity(account), principal="citizen", now=now
    )


@citizen_router.get(
    "/me/companies", summary="Companies I may act for", responses=problems(CITIZENS)
)
async def my_companies(identity: Citizen, session: UnitOfWork) -> list[CompanyOut]:
    return [
        CompanyOut.model_validate(c, from_attributes=True)
        for c in await repository.companies(session, identity.subject)
    ]


@citizen_router.post(
    "/me/companies",
    summary="Bind a company as its legal representative or authorised agent",
    responses=problems(CITIZENS, WITH_BODY, accounts.NotCompanyRepresentative),
)
async def bind_company(
    body: CompanyIn, identity: Citizen, session: UnitOfWork, request: Request
) -> CompanyOut:
    check_assurance(identity, AssuranceLevel.REAL_NAME)
    account = await _account(session, identity)
    binding = await accounts.bind_company(
        session,
        account=account,
        uscc=body.uscc,
        verifier=_verifier(request),
        cipher=_cipher(request),
        now=utcnow(),
    )
    return CompanyOut.model_validate(binding, from_attributes=True)


# --- Home -----------------------------------------------------------------------------------

OPEN_STATUSES = frozenset(
    {
        "submitted",
        "accepted",
        "under_review",
        "correction_requested",
        "resubmitted",
        "approved",
        "certificate_failed",
    }
)


@citizen_router.get(
    "/home",
    summary="The first screen: hot items, my open applications, …",
    responses=problems(CITIZENS),
)
async def home(identity: Citizen, services: Services) -> HomeOut:
    parts = await asyncio.gather(
        services.json("catalog", "GET", "/items", params={"list": "网上办", "page_size": 8}),
        services.json("intake", "GET", "/applications"),
        services.json("notify", "GET", "/me/notifications", params={"limit": 1}),
        services.json("sharing", "GET", "/me/certificates"),
        return_exceptions=True,
    )
    names = ("hot_items", "my_open_applications", "unread_messages", "wallet_count")
    # A screen of four parts should not fail as a whole because one service is slow or down.
    degraded = [n for n, p in zip(names, parts, strict=True) if isinstance(p, BaseException)]
    for part in parts:
        if isinstance(part, BaseException) and not isinstance(part, Exception):
            raise part
    items, applications, inbox, wallet = (
        None if isinstance(p, BaseException) else p for p in parts
    )
    return HomeOut(
        hot_items=list((items or {}).get("items", [])),
        my_open_applications=[a for a in applications or [] if a["status"] in OPEN_STATUSES],
        unread_messages=int((inbox or {}).get("unread", 0)),
        wallet_count=len(wallet or []),
        degraded=degraded,
    )


# --- Public: the catalogue and certificate verification ---------------------------------------


@public_router.get("/items", summary="Find service items", responses=problems(FORWARDED_PROBLEMS))
async def find_items(
    services: Services,
    q: Annotated[str | None, Query(max_length=50, pattern=PRINTABLE)] = None,
    department: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    type: Annotated[str | None, Query(max_length=20, pattern=PRINTABLE)] = None,
    theme: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    list: Annotated[str | None, Query(max_length=4, pattern=PRINTABLE)] = None,
    miaopi: bool | None = None,
    page: Annotated[int, Query(ge=1, le=500)] = 1,
) -> Response:
    return await services.forward(
        "catalog",
        "GET",
        "/items",
        params={
            "q": q,
            "department": department,
            "item_type": type,
            "theme": theme,
            "list": list,
            "auto_approval": miaopi,
            "page": page,
        },
    )


@public_router.get(
    "/items/{code}",
    summary="The full guide (办事指南) of an item",
    responses=problems(FORWARDED_PROBLEMS),
)
async def get_item(code: str, services: Services) -> Response:
    return await services.forward("catalog", "GET", f"/items/{segment(code)}")


@public_router.get(
    "/bundles", summary="Bundles (一件事一次办)", responses=problems(FORWARDED_PROBLEMS)
)
async def list_bundles(services: Services) -> Response:
    return await services.forward("catalog", "GET", "/bundles")


@public_router.get(
    "/bundles/{bundle_id}",
    summary="One bundle, its current version",
    responses=problems(NotFound, UpstreamUnavailable),
)
async def get_bundle(bundle_id: str, services: Services) -> Any:
    for version in await services.json("catalog", "GET", "/bundles"):
        if bundle_id in (version.get("bundle_id"), version.get("id")):
            return version
    raise NotFound("一件事主题不存在")


@public_router.get(
    "/certificates/verify",
    summary="Verify a certificate (id or QR payload)",
    responses=problems(FORWARDED_PROBLEMS),
)
async def verify_certificate(
    services: Services,
    id: Annotated[str | None, Query(max_length=120, pattern=PRINTABLE)] = None,
    qr: Annotated[str | None, Query(max_length=512, pattern=PRINTABLE)] = None,
) -> Response:
    return await services.forward(
        "sharing", "POST", "/certificates/verify", json={"certificate_id": id, "qr": qr}
    )


# --- The citizen's applications, wallet, data use and messages ------------------------------


@citizen_router.post(
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
    settings, now = _settings(request), utcnow()
    limits = _limits(settings)
    counted = [
        (limits["submit-user"], identity.subject),
        (limits["submit-ip"], _client_ip(request)),
    ]
    for limit, who in counted:
        await _limit(request, limit=limit, who=who, now=now)
    try:
        answer = await _submit(body, identity, services, request, idempotency_key)
    except Exception as refused:
        if ratelimit.our_fault(refused.status if isinstance(refused, Problem) else 500, None):
            await _refund(request, counted, now=now)
        raise
    if ratelimit.our_fault(answer.status_code, _problem_type(answer)):
        await _refund(request, counted, now=now)
    return answer


async def _refund(
    request: Request, counted: list[tuple[ratelimit.Limit, str]], *, now: datetime
) -> None:
    """A submission refused for our fault (a service down, an item intake has not learnt yet)
    does not use up the citizen's limit."""
    database: Database = request.app.state.database
    async with database.sessionmaker() as counting, counting.begin():
        for limit, who in counted:
            await ratelimit.refund(counting, limit=limit, who=who, now=now)


def _problem_type(answer: Response) -> str | None:
    if not answer.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    try:
        found = json.loads(bytes(answer.body))
    except ValueError:
        return None
    return str(found.get("type")) if isinstance(found, dict) else None


async def _submit(
    body: ApplyIn,
    identity: Identity,
    services: Upstreams,
    request: Request,
    idempotency_key: str,
) -> Response:
    # The account is read in a session of its own, closed before the catalog and intake are
    # called: a submission waiting for them holds no pooled connection (a burst of slow
    # submissions once emptied the gateway's pool and stalled every route).
    database: Database = request.app.state.database
    async with database.read_sessionmaker() as reads:
        account = await _account(reads, identity)
        person = accounts.verified_person(account, _cipher(request))
        applicant: dict[str, str] = {
            "kind": "person",
            "id_number": person.id_number,
            "name": person.name,
        }
        caller = identity
        if body.act_for_company:
            company = await accounts.company_to_act_for(
                reads, account=account, uscc=body.act_for_company
            )
            applicant = {
                "kind": "company",
                "id_number": company.uscc,
                "name": company.company_name,
            }
            caller = accounts.citizen_identity(account, acting_for=company.uscc)
    if caller is not identity:
        identity_var.set(caller)
    target: dict[str, Any]
    if body.item_code is not None:
        item = await services.json("catalog", "GET", f"/items/{segment(body.item_code)}")
        target = {"item_version_id": item["id"]}
    else:
        bundle = await get_bundle(str(body.bundle_id), services)
        target = {"bundle_version_id": bundle["id"]}
    return await services.forward(
        "intake",
        "POST",
        "/applications",
        json={
            **target,
            "applicant": applicant,
            "form": body.form,
            "materials": body.materials,
            "member_materials": body.member_materials,
            "channel": "mini_program",
            "draft": body.draft,
        },
        headers={IDEMPOTENCY_KEY_HEADER: idempotency_key},
    )


@citizen_router.get(
    "/applications",
    summary="My applications",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_applications(identity: Citizen, services: Services) -> Response:
    return await services.forward("intake", "GET", "/applications")


@citizen_router.get(
    "/applications/{application_id}",
    summary="One application with its timeline and the reasons of any decision",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_application(application_id: str, identity: Citizen, services: Services) -> Response:
    return await services.forward("intake", "GET", f"/applications/{segment(application_id)}")


async def _raw(request: Request) -> tuple[bytes, dict[str, str]]:
    body = await request.body()
    headers = {}
    if "content-type" in request.headers:
        headers["Content-Type"] = request.headers["content-type"]
    if IDEMPOTENCY_KEY_HEADER.lower() in request.headers:
        headers[IDEMPOTENCY_KEY_HEADER] = request.headers[IDEMPOTENCY_KEY_HEADER.lower()]
    return body, headers


@citizen_router.post(
    "/applications/{application_id}/materials",
    summary="Upload a material file (multipart) for use in this application",
    status_code=201,
    responses=problems(CITIZENS, FORWARDED_PROBLEMS, UPLOADS),
)
async def upload_material(
    application_id: str, identity: Citizen, services: Services, request: Request
) -> Response:
    content, headers = await _raw(request)
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
        content, headers = await _raw(request)
        return await services.forward(
            "intake",
            "POST",
            f"/applications/{segment(application_id)}/{action}",
            content=content,
            headers=headers,
        )

    act.__name__ = f"application_{action}"
    citizen_router.post(
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


@citizen_router.get(
    "/certificates",
    summary="My certificate wallet (证照夹)",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_certificates(identity: Citizen, services: Services) -> Response:
    return await services.forward("sharing", "GET", "/me/certificates")


@citizen_router.get(
    "/certificates/{certificate_id}",
    summary="One certificate of mine",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_certificate(certificate_id: str, identity: Citizen, services: Services) -> Response:
    return await services.forward("sharing", "GET", f"/me/certificates/{segment(certificate_id)}")


@citizen_router.get(
    "/consents",
    summary="My consents to lookups of my data (数据授权)",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def my_consents(identity: Citizen, services: Services) -> Response:
    return await services.forward("sharing", "GET", "/me/consents")


@citizen_router.post(
    "/consents",
    status_code=201,
    summary="Consent to lookups of my data for an item, before applying (数据授权)",
    description="Some items' data (敏感个人信息, e.g. disability records) may be looked up only "
    "with the citizen's consent; without it 秒批 cannot read them and the case goes to a person.",
    responses=problems(CITIZENS, WITH_BODY, FORWARDED_PROBLEMS),
)
async def give_consent(identity: Citizen, services: Services, request: Request) -> Response:
    content, headers = await _raw(request)
    return await services.forward(
        "sharing", "POST", "/me/consents", content=content, headers=headers
    )


@citizen_router.delete(
    "/consents/{consent_id}",
    summary="Withdraw a consent",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def withdraw_consent(consent_id: str, identity: Citizen, services: Services) -> Response:
    return await services.forward("sharing", "DELETE", f"/me/consents/{segment(consent_id)}")


@citizen_router.get(
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


@citizen_router.get(
    "/messages", summary="My in-app inbox", responses=problems(CITIZENS, FORWARDED_PROBLEMS)
)
async def my_messages(
    identity: Citizen,
    services: Services,
    unread: bool = False,
    before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    return await services.forward(
        "notify",
        "GET",
        "/me/notifications",
        params={"unread": unread, "before": before.isoformat() if before else None, "limit": limit},
    )


@citizen_router.post(
    "/messages/{message_id}/read",
    summary="Mark a message read",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def read_message(message_id: str, identity: Citizen, services: Services) -> Response:
    return await services.forward("notify", "POST", f"/me/notifications/{segment(message_id)}/read")


@citizen_router.post(
    "/subscriptions",
    summary="Report what wx.requestSubscribeMessage answered",
    responses=problems(CITIZENS, FORWARDED_PROBLEMS),
)
async def report_subscriptions(identity: Citizen, services: Services, request: Request) -> Response:
    content, headers = await _raw(request)
    return await services.forward(
        "notify", "POST", "/me/subscriptions", content=content, headers=headers
    )


@citizen_router.post(
    "/me/phone",
    summary="Give my mobile number for SMS notices: a 6-digit code is sent to it",
    responses=problems(CITIZENS, WITH_BODY, ratelimit.RateLimited, FORWARDED_PROBLEMS),
)
async def give_phone(identity: Citizen, services: Services, request: Request) -> Response:
    content, headers = await _raw(request)
    return await services.forward("notify", "POST", "/me/phone", content=content, headers=headers)


@citizen_router.post(
    "/me/phone/verify",
    summary="Type back the SMS code: SMS notices then go to that number",
    responses=problems(CITIZENS, WITH_BODY, FORWARDED_PROBLEMS),
)
async def verify_phone(identity: Citizen, services: Services, request: Request) -> Response:
    content, headers = await _raw(request)
    return await services.forward(
        "notify", "POST", "/me/phone/verify", content=content, headers=headers
    )


# --- Staff ----------------------------------------------------------------------------------

STAFF_ROUTES: tuple[tuple[str, str, str, str, str], ...] = (
    # method, gateway path (under /staff), service, service path, summary
    ("GET", "/applications", "intake", "/staff/applications", "Applications of my window"),
    (
        "POST",
        "/applications",
        "intake",
        "/staff/applications",
        "Accept an application at the window",
    ),
    ("POST", "/applications/{id}/accept", "intake", "/staff/applications/{id}/accept", "受理"),
    (
        "POST",
        "/applications/{id}/not-accept",
        "intake",
        "/staff/applications/{id}/not-accept",
        "不予受理",
    ),
    ("GET", "/cases/queue", "approval", "/cases/queue", "My department's queue"),
    ("GET", "/cases/{id}", "approval", "/cases/{id}", "A case and why it was decided"),
    ("POST", "/cases/{id}/claim", "approval", "/cases/{id}/claim", "Claim a case"),
    ("POST", "/cases/{id}/advance", "approval", "/cases/{id}/advance", "Next workflow step"),
    ("POST", "/cases/{id}/approve", "approval", "/cases/{id}/approve", "Approve"),
    ("POST", "/cases/{id}/deny", "approval", "/cases/{id}/deny", "Deny with a reason"),
    ("POST", "/cases/{id}/correction", "approval", "/cases/{id}/correction", "补正"),
    ("POST", "/cases/{id}/suspend", "approval", "/cases/{id}/suspend", "特别程序: suspend"),
    ("POST", "/cases/{id}/resume", "approval", "/cases/{id}/resume", "Resume"),
    ("POST", "/cases/{id}/not-accept", "approval", "/cases/{id}/not-accept", "不予受理"),
    ("POST", "/rules/dry-run", "approval", "/rules/dry-run", "Dry-run a 秒批 rule set"),
    ("POST", "/catalog/items", "catalog", "/admin/items", "New item draft"),
    (
        "GET",
        "/catalog/item-versions/{id}",
        "catalog",
        "/admin/item-versions/{id}",
        "A version of my department's item (drafts included)",
    ),
    ("PUT", "/catalog/item-versions/{id}", "catalog", "/admin/item-versions/{id}", "Edit a draft"),
    ("POST", "/catalog/items/{id}/revisions", "catalog", "/admin/items/{id}/revisions", "Revise"),
    (
        "GET",
        "/catalog/item-versions/{id}/problems",
        "catalog",
        "/admin/item-versions/{id}/problems",
        "Problems of a draft",
    ),
    (
        "POST",
        "/catalog/item-versions/{id}/publish",
        "catalog",
        "/admin/item-versions/{id}/publish",
        "Publish",
    ),
    (
        "POST",
        "/catalog/item-versions/{id}/submit",
        "catalog",
        "/admin/item-versions/{id}/submit",
        "Submit a rule change for review (四眼原则)",
    ),
    (
        "POST",
        "/catalog/item-versions/{id}/approve",
        "catalog",
        "/admin/item-versions/{id}/approve",
        "Approve and publish another person's submitted change",
    ),
    (
        "POST",
        "/catalog/item-versions/{id}/reject",
        "catalog",
        "/admin/item-versions/{id}/reject",
        "Send a submitted change back to draft",
    ),
    ("GET", "/catalog/rule-changes", "catalog", "/admin/rule-changes", "Rule-change records"),
    ("POST", "/catalog/items/{id}/withdraw", "catalog", "/admin/items/{id}/withdraw", "Withdraw"),
    ("POST", "/catalog/bundles", "catalog", "/admin/bundles", "New bundle"),
    (
        "POST",
        "/catalog/bundle-versions/{id}/publish",
        "catalog",
        "/admin/bundle-versions/{id}/publish",
        "Publish a bundle",
    ),
    ("PUT", "/catalog/synonyms", "catalog", "/admin/synonyms", "Search synonyms"),
    ("POST", "/catalog/imports", "catalog", "/admin/imports", "Import items (CSV/JSON): a job"),
    ("GET", "/catalog/jobs/{id}", "catalog", "/admin/jobs/{id}", "An import job's progress"),
    ("GET", "/catalog/exports", "catalog", "/admin/exports", "Export items"),
    (
        "GET",
        "/rectifications/overdue",
        "intake",
        "/staff/rectifications/overdue",
        "Overdue rectifications",
    ),
    ("POST", "/rectifications/{id}/reply", "intake", "/staff/rectifications/{id}/reply", "Reply"),
    (
        "POST",
        "/rectifications/{id}/return-visit",
        "intake",
        "/staff/rectifications/{id}/return-visit",
        "Return visit",
    ),
    ("POST", "/rectifications/{id}/close", "intake", "/staff/rectifications/{id}/close", "Close"),
    ("GET", "/audit", "sharing", "/admin/audit", "Data-use audit records"),
    ("GET", "/audit/verify", "sharing", "/admin/audit/verify", "Verify the audit chain"),
    (
        "POST",
        "/certificates/{id}/status",
        "sharing",
        "/admin/certificates/{id}/status",
        "Change a certificate's status (officers of the issuing department, with a reason)",
    ),
    ("GET", "/notify/messages", "notify", "/messages", "Push messages and their status"),
    ("GET", "/notify/templates", "notify", "/templates", "Notification templates"),
)
"""Staff routes are the services' own: the gateway authenticates and passes them through (each
service checks the roles and department)."""


def _staff_route(method: str, path: str, service: str, target: str, summary: str) -> None:
    async def route(staff: Staff, services: Services, request: Request) -> Response:
        content, headers = await _raw(request)
        answer = await services.forward(
            service,
            method,
            target.format(**{k: segment(v) for k, v in request.path_params.items()}),
            params=dict(request.query_params),
            content=content or None,
            headers=headers,
        )
        # A job's Location names the catalogue's own route; the admin polls the gateway's.
        location = answer.headers.get("location", "")
        if service == "catalog" and location.startswith("/admin/jobs/"):
            answer.headers["location"] = f"{API}/staff/catalog/jobs/" + location.split("/")[-1]
        return answer

    route.__name__ = "staff_" + re.sub(r"\W+", "_", f"{method}_{path}").strip("_").lower()
    answers = (STAFF, UPLOADS) if path == "/catalog/imports" else (STAFF,)
    staff_router.add_api_route(
        path,
        route,
        methods=[method],
        summary=summary,
        responses=problems(*answers, FORWARDED_PROBLEMS),
    )


for _route in STAFF_ROUTES:
    _staff_route(*_route)


PASS_THROUGH: dict[tuple[str, str], tuple[str, str, str]] = {
    (method, f"{API}/staff{path}"): (service, method, target)
    for method, path, service, target, _ in STAFF_ROUTES
} | {
    ("GET", f"{API}/items"): ("catalog", "GET", "/items"),
    ("GET", f"{API}/items/{{code}}"): ("catalog", "GET", "/items/{id}"),
    ("GET", f"{API}/bundles"): ("catalog", "GET", "/bundles"),
    ("GET", f"{API}/certificates/verify"): ("sharing", "POST", "/certificates/verify"),
    ("POST", f"{API}/applications"): ("intake", "POST", "/applications"),
    ("GET", f"{API}/applications"): ("intake", "GET", "/applications"),
    ("GET", f"{API}/applications/{{application_id}}"): ("intake", "GET", "/applications/{id}"),
    ("POST", f"{API}/applications/{{application_id}}/materials"): ("intake", "POST", "/files"),
    **{
        ("POST", f"{API}/applications/{{application_id}}/{action}"): (
            "intake",
            "POST",
            f"/applications/{{id}}/{action}",
        )
        for action in ("submit", "supplement", "withdraw", "rating")
    },
    ("GET", f"{API}/certificates"): ("sharing", "GET", "/me/certificates"),
    ("GET", f"{API}/certificates/{{certificate_id}}"): ("sharing", "GET", "/me/certificates/{id}"),
    ("GET", f"{API}/data-usage"): ("sharing", "GET", "/me/data-usage"),
    ("GET", f"{API}/consents"): ("sharing", "GET", "/me/consents"),
    ("POST", f"{API}/consents"): ("sharing", "POST", "/me/consents"),
    ("DELETE", f"{API}/consents/{{consent_id}}"): ("sharing", "DELETE", "/me/consents/{id}"),
    ("GET", f"{API}/messages"): ("notify", "GET", "/me/notifications"),
    ("POST", f"{API}/messages/{{message_id}}/read"): (
        "notify",
        "POST",
        "/me/notifications/{id}/read",
    ),
    ("POST", f"{API}/subscriptions"): ("notify", "POST", "/me/subscriptions"),
    ("POST", f"{API}/me/phone"): ("notify", "POST", "/me/phone"),
    ("POST", f"{API}/me/phone/verify"): ("notify", "POST", "/me/phone/verify"),
    # Every service has the same dead-letter routes (the kit's): the catalogue's stand for all.
    ("GET", f"{API}/staff/ops/dead-letters/{{service}}"): ("catalog", "GET", "/ops/dead-letters"),
    ("POST", f"{API}/staff/ops/dead-letters/{{service}}/{{dead_letter_id}}/replay"): (
        "catalog",
        "POST",
        "/ops/dead-letters/{id}/replay",
    ),
    ("GET", f"{API}/stats/catalog"): ("catalog", "GET", "/statistics"),
    ("GET", f"{API}/stats/intake"): ("intake", "GET", "/staff/statistics"),
}
"""Routes that answer with a service's answer unchanged, and the service operation they call:
the gateway's document takes their success answers from the service's (gateway/contract.py)."""
FORWARDING_QUERY = frozenset(
    {(method, f"{API}/staff{path}") for method, path, *_ in STAFF_ROUTES}
    | {("GET", f"{API}/staff/ops/dead-letters/{{service}}"), ("GET", f"{API}/stats/intake")}
)
"""Pass-through routes that hand the whole query string on to the service."""


OPS_SERVICES = ("catalog", "intake", "approval", "sharing", "notify")
"""The services that consume events, hence may have dead letters (the gateway consumes none)."""


class UnknownService(NotFound):
    type_slug = "unknown-service"
    title = "没有这个服务"


def _ops_target(service: str) -> str:
    if service not in OPS_SERVICES:
        raise UnknownService(f"没有“{service}”这个服务", extra={"services": list(OPS_SERVICES)})
    return service


@staff_router.get(
    "/ops/dead-letters/{service}",
    summary="Dead letters of one service (ops)",
    responses=problems(STAFF, FORWARDED_PROBLEMS, UnknownService),
)
async def dead_letters(
    service: str, staff: Staff, services: Services, request: Request
) -> Response:
    return await services.forward(
        _ops_target(service), "GET", "/ops/dead-letters", params=dict(request.query_params)
    )


@staff_router.post(
    "/ops/dead-letters/{service}/{dead_letter_id}/replay",
    summary="Replay one dead letter (ops)",
    responses=problems(STAFF, FORWARDED_PROBLEMS, UnknownService),
)
async def replay_dead_letter(
    service: str, dead_letter_id: str, staff: Staff, services: Services
) -> Response:
    return await services.forward(
        _ops_target(service), "POST", f"/ops/dead-letters/{segment(dead_letter_id)}/replay"
    )


@stats_router.get(
    "/catalog",
    summary="The catalogue's statistics (四办 lists, 秒批 share)",
    responses=problems(STAFF, FORWARDED_PROBLEMS),
)
async def catalog_statistics(staff: Staff, services: Services) -> Response:
    return await services.forward("catalog", "GET", "/statistics")


@stats_router.get(
    "/intake",
    summary="Applications: volumes, on-time rate, ratings",
    responses=problems(STAFF, FORWARDED_PROBLEMS),
)
async def intake_statistics(staff: Staff, services: Services, request: Request) -> Response:
    return await services.forward(
        "intake", "GET", "/staff/statistics", params=dict(request.query_params)
    )


__all__ = [
    "UpstreamProblem",
    "auth_router",
    "citizen_router",
    "client_identity",
    "public_router",
    "staff_router",
    "stats_router",
]
