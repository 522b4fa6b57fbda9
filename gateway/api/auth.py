"""Logging in and out: WeChat, staff passwords, the development login; refreshing tokens."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from gateway import accounts, ratelimit, sessions
from gateway.api import API, deps
from gateway.api.deps import (
    WECHAT,
    WITH_BODY,
    blind_index_of,
    cipher_of,
    client_ip,
    count,
    issue_tokens,
    problems,
    report_openid,
    settings_of,
    verifier_of,
    wechat_of,
)
from gateway.schemas import DevLoginIn, RefreshIn, StaffLoginIn, TokenOut, WeChatLoginIn
from gateway.wechat import HighRiskUser, InvalidLoginCode, LoginRateLimited
from wangban.db import UnitOfWork
from wangban.errors import NotFound, ValidationFailed
from wangban.settings import Environment

router = APIRouter(prefix=f"{API}/auth", tags=["login"])


class DevLoginDisabled(NotFound):
    type_slug = "not-found"
    title = "资源不存在"


@router.post(
    "/wechat",
    summary="Log in with the code from wx.login",
    responses=problems(
        WITH_BODY, InvalidLoginCode, HighRiskUser, ratelimit.RateLimited, LoginRateLimited, WECHAT
    ),
)
async def login_with_wechat(
    body: WeChatLoginIn, request: Request, session: UnitOfWork, tasks: BackgroundTasks
) -> TokenOut:
    now = deps.utcnow()
    await count(request, limit="login", who=client_ip(request), now=now)
    wechat = await wechat_of(request).code_to_session(body.code)
    account = await accounts.wechat_login(session, wechat=wechat, now=now)
    token = await issue_tokens(
        request, session, identity=accounts.citizen_identity(account), principal="citizen", now=now
    )
    report_openid(request, tasks, account)
    return token


@router.post(
    "/refresh",
    summary="A new token pair for a refresh token (each works once)",
    responses=problems(
        WITH_BODY, sessions.SessionExpired, sessions.RefreshTokenReused, accounts.AccountGone
    ),
)
async def refresh(body: RefreshIn, request: Request, session: UnitOfWork) -> TokenOut:
    now = deps.utcnow()
    used = await sessions.use_refresh_token(
        session,
        refresh_token=body.refresh_token,
        revocations=sessions.revocations(request.app),
        now=now,
    )
    identity = await accounts.identity_now(session, principal=used.principal, subject=used.subject)
    return await issue_tokens(
        request,
        session,
        identity=identity,
        principal=used.principal,
        now=now,
        family_id=used.family_id,
    )


@router.post(
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
        now=deps.utcnow(),
    )


@router.post(
    "/staff",
    summary="Staff login with username and password",
    responses=problems(
        WITH_BODY, accounts.WrongCredentials, accounts.LoginThrottled, ratelimit.RateLimited
    ),
)
async def login_staff(body: StaffLoginIn, request: Request, session: UnitOfWork) -> TokenOut:
    now = deps.utcnow()
    await count(request, limit="staff-login", who=client_ip(request), now=now)
    staff = await accounts.staff_login(
        session,
        username=body.username,
        password=body.password,
        address=client_ip(request),
        blind_index=blind_index_of(request),
        now=now,
    )
    return await issue_tokens(
        request, session, identity=accounts.staff_identity(staff), principal="staff", now=now
    )


@router.post(
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
    if settings_of(request).env not in (Environment.LOCAL, Environment.TEST):
        raise DevLoginDisabled("资源不存在")
    now = deps.utcnow()
    account = await accounts.development_login(
        session,
        openid=body.openid,
        assurance=body.assurance,
        name=body.name,
        id_number=body.id_number,
        verifier=verifier_of(request),
        cipher=cipher_of(request),
        blind_index=blind_index_of(request),
        now=now,
    )
    token = await issue_tokens(
        request, session, identity=accounts.citizen_identity(account), principal="citizen", now=now
    )
    report_openid(request, tasks, account)
    return token
