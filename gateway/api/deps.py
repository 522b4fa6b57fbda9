"""What the gateway's routes share: the caller (authentication, citizens or staff), the
services, the clients and keys on the app, rate limits, token issue, and the problems each kind
of route may answer (its OpenAPI ``responses``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import accounts, clients, ratelimit, recipients, sessions
from gateway.identity_provider import IdentityVerifier
from gateway.models import Account
from gateway.protection import BodyTooLarge
from gateway.schemas import TokenOut
from gateway.upstream import Upstreams, gateway_path_var
from gateway.wechat import WeChatAuth, WeChatBusy, WeChatUnavailable
from wangban.auth import Identity, InsufficientAssurance, InternalTokens, identity_var
from wangban.crypto import BlindIndex, FieldCipher
from wangban.db import Database
from wangban.errors import BadRequest, Forbidden, Problem, Unauthorized, problem_responses
from wangban.http import IDEMPOTENCY_KEY_HEADER
from wangban.settings import Settings

_BEARER = re.compile(r"Bearer\s+(\S+)", re.IGNORECASE)


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

SIGNED_IN: tuple[type[Problem], ...] = (
    Unauthorized,
    sessions.SessionExpired,
    accounts.AccountGone,
)
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


# --- The app's clients and keys -------------------------------------------------------------


def utcnow() -> datetime:
    """The gateway's clock. Routes call it as ``deps.utcnow()``, looked up at each call, so a
    test can freeze it here for every route (rate-limit windows)."""
    return datetime.now(UTC)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def _client_tokens(request: Request) -> InternalTokens:
    tokens: InternalTokens = request.app.state.client_tokens
    return tokens


def wechat_of(request: Request) -> WeChatAuth:
    return clients.wechat_auth(request.app)


def verifier_of(request: Request) -> IdentityVerifier:
    verifier: IdentityVerifier = request.app.state.identity_verifier
    return verifier


def cipher_of(request: Request) -> FieldCipher:
    cipher: FieldCipher = request.app.state.cipher
    return cipher


def blind_index_of(request: Request) -> BlindIndex:
    blind_index: BlindIndex = request.app.state.blind_index
    return blind_index


async def _upstreams(request: Request) -> Upstreams:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hop on every pass-through request (under load, waiting for worker threads to start
    # dominated the gateway's profile).
    upstreams: Upstreams = request.app.state.upstreams
    # A problem passed through names the path the client asked for, not the service's.
    gateway_path_var.set(request.url.path)
    return upstreams


Services = Annotated[Upstreams, Depends(_upstreams)]


# --- Who is calling -------------------------------------------------------------------------


async def client_identity(request: Request) -> Identity:
    """The caller, from the access token the gateway issued (401 without a valid one). Bound
    for the request, so every call to a service carries it."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("请先登录")
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        raise Unauthorized("登录凭证格式不正确")
    identity, family = _client_tokens(request).verify_session(match.group(1))
    # A token outlives its login only until the gateway hears of the logout (or of a refresh
    # token's reuse): its family is checked against the ended ones (cached a few seconds).
    if family is None or await sessions.revocations(request.app).is_revoked(family):
        raise sessions.SessionExpired("登录已失效，请重新登录")
    identity_var.set(identity)
    request.state.subject = identity.subject
    return identity


Client = Annotated[Identity, Depends(client_identity)]


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


def client_ip(request: Request) -> str:
    """The client's address for per-address limits: the socket's peer, or behind our own proxies
    the right-most address in ``X-Forwarded-For`` they did not write (``ratelimit``)."""
    trusted: ratelimit.TrustedProxies = request.app.state.trusted_proxies
    return trusted.client_address(
        request.client.host if request.client else None,
        request.headers.getlist("x-forwarded-for"),
    )


# --- Rate limits ----------------------------------------------------------------------------


def limits(settings: Settings) -> dict[str, ratelimit.Limit]:
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


async def count(request: Request, *, limit: str, who: str, now: datetime) -> None:
    """Count the request against the gateway's limit named ``limit`` (429 over it), committed
    at once (:func:`gateway.ratelimit.count`)."""
    chosen = limits(settings_of(request))[limit]
    await ratelimit.count(database_of(request), counted=[(chosen, who)], now=now)


# --- Logins ---------------------------------------------------------------------------------


async def issue_tokens(
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
        tokens=_client_tokens(request),
        settings=settings_of(request),
        now=now,
        family_id=family_id,
    )
    return TokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        token_type=pair.token_type,
    )


def report_openid(request: Request, tasks: BackgroundTasks, account: Account) -> None:
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


# --- Passing a request on -------------------------------------------------------------------


async def raw(request: Request) -> tuple[bytes, dict[str, str]]:
    """The request's body as it came, with the headers the service needs to read it."""
    body = await request.body()
    headers = {}
    if "content-type" in request.headers:
        headers["Content-Type"] = request.headers["content-type"]
    if IDEMPOTENCY_KEY_HEADER.lower() in request.headers:
        headers[IDEMPOTENCY_KEY_HEADER] = request.headers[IDEMPOTENCY_KEY_HEADER.lower()]
    return body, headers
